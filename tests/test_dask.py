"""The training flow fanned out on a real Dask cluster: a `dask scheduler` and two `dask worker` processes on
127.0.0.1, the flow run against the session's Prefect test server with one epoch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pm25.temporary_server import free_loopback_port
from tasks.settings import PROJECT_ROOT

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]
DASK = Path(sys.executable).with_name("dask")
STATIONS = ("Dongsi", "Shunyi")


def start(arguments: list[str], environment: dict[str, str], log: Path) -> subprocess.Popen:
    handle = open(log, "wb")
    return subprocess.Popen([str(DASK), *arguments], cwd=PROJECT_ROOT, env=environment, stdout=handle,
                            stderr=subprocess.STDOUT, start_new_session=True)


@pytest.fixture()
def dask_cluster(tmp_path) -> Iterator[str]:
    """A real scheduler and two single-threaded worker processes that report to the test's Prefect API."""
    from distributed import Client
    from prefect.settings import PREFECT_API_URL

    port = free_loopback_port()
    address = f"tcp://127.0.0.1:{port}"
    environment = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PREFECT_LOGGING_EXTRA_LOGGERS": "tasks"}
    processes = [start(["scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], environment,
                       tmp_path / "scheduler.log")]
    processes += [start(["worker", address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard", "--name",
                         f"worker-{n}"], environment, tmp_path / f"worker-{n}.log") for n in (1, 2)]
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with Client(address, timeout=5) as client:
                    client.wait_for_workers(2, timeout=max(1, deadline - time.monotonic()))
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        yield address
    finally:
        for process in processes[::-1]:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            process.wait(timeout=60)


def test_every_task_runs_on_a_dask_worker_and_logs_reach_the_prefect_run(dask_cluster, multisite_dir, tmp_path):
    from distributed import Client
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
    from prefect_dask import DaskTaskRunner

    from flows.train import train_pm25

    sources = ",".join(str(next(multisite_dir.glob(f"PRSA_Data_{station}_*.csv"))) for station in STATIONS)
    flow_on_dask = train_pm25.with_options(task_runner=DaskTaskRunner(address=dask_cluster))
    state = flow_on_dask(source=sources, home=str(tmp_path / "home"), max_epochs=1, return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert result["stations"] == list(STATIONS) and Path(result["forecast"]).is_file()

    with Client(dask_cluster) as client:
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
