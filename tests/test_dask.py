"""The training flow fanned out on a real Dask cluster: a `dask scheduler` and two `dask worker` processes on
127.0.0.1, the flow run against the session's Prefect test server with one epoch."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]
STATIONS = ("Dongsi", "Shunyi")


def test_every_task_runs_on_a_dask_worker_and_logs_reach_the_prefect_run(dask_cluster, multisite_dir, tmp_path):
    from distributed import Client
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
    from prefect_dask import DaskTaskRunner

    from flows.train import train_pm25

    sources = ",".join(str(next(multisite_dir.glob(f"PRSA_Data_{station}_*.csv"))) for station in STATIONS)
    flow_on_dask = train_pm25.with_options(task_runner=DaskTaskRunner(address=dask_cluster.address))
    state = flow_on_dask(source=sources, home=str(tmp_path / "home"), max_epochs=1, return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert result["stations"] == list(STATIONS) and Path(result["forecast"]).is_file()

    with Client(dask_cluster.address) as client:
        executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
    assert len(executed) == 2 and all(count > 0 for count in executed.values()), executed
    with get_client(sync_client=True) as prefect:
        flow_run_id = state.state_details.flow_run_id
        task_runs = prefect.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        logs = prefect.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    assert task_runs and all(run.state.is_completed() for run in task_runs)
    assert sum(executed.values()) == len(task_runs)  # each task ran on a worker, none in the flow's process
    worker_lines = [entry.message for entry in logs if entry.name.startswith("tasks.") and entry.task_run_id]
    assert any("trained 1 epochs" in line for line in worker_lines)
    assert any(line.startswith("ingested 35064 rows of station Shunyi") for line in worker_lines)
