"""End to end, as an operator runs it: `pm25 serve` starts a real Prefect server (SQLite, then PostgreSQL), the
work pool, the deployments, the automations (alerts to a webhook receiver on loopback) and a worker on a free loopback
port; `pm25 trigger` runs train-pm25/nightly with max_epochs=1 and streams it; then the API, the files and the UI
(headless Chromium) are checked, and runs are killed, with and without their worker, and timed out."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass

import pytest
from chromium import HeadlessChromium, chromium_path
from servers import free_loopback_port, postgres_database, required_or_skip, webhook_receiver

from pm25.cli import main
from tasks.core.settings import PROJECT_ROOT, Settings

SERVE_TIMEOUT_SECONDS = 240
SCREENSHOTS = PROJECT_ROOT / "reports" / "ui"


@dataclass
class Served:
    backend: str
    api_url: str
    ui_url: str
    output: list[str]
    pid: int  # of `pm25 serve`
    webhook: str  # its PM25_ALERT_WEBHOOK
    alerts: list[dict]  # every body the webhook received

    def alerts_for(self, flow_run_id: uuid.UUID) -> list[dict]:
        return [alert for alert in self.alerts if alert["flow_run_id"] == str(flow_run_id)]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def served(request, tmp_path_factory):
    """`pm25 serve` in its own process, stopped with Ctrl-C (SIGINT) at the end, which must exit 0."""
    with contextlib.ExitStack() as stack:
        webhook, alerts = stack.enter_context(webhook_receiver())
        env = {**os.environ, "PREFECT_HOME": str(tmp_path_factory.mktemp(f"prefect-{request.param}")),
               "PM25_ALERT_WEBHOOK": webhook}
        password = None
        if request.param == "postgres":
            env["PREFECT_API_DATABASE_CONNECTION_URL"], password = stack.enter_context(postgres_database())
        yield from serve_process(request.param, env, password, webhook, alerts)


def serve_process(backend: str, env: dict[str, str], password: str | None, webhook: str, alerts: list[dict]):
    port = free_loopback_port()
    process = subprocess.Popen([sys.executable, "-m", "pm25.cli", "serve", "--port", str(port)], cwd=PROJECT_ROOT,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + SERVE_TIMEOUT_SECONDS
    while not any(line.startswith("Prefect UI:") for line in output):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("pm25 serve did not come up:\n" + "".join(output[-60:]))
        time.sleep(0.5)
    yield Served(backend, f"http://127.0.0.1:{port}/api", f"http://127.0.0.1:{port}", output, process.pid, webhook, alerts)
    process.send_signal(signal.SIGINT)
    assert process.wait(90) == 0, "".join(output[-40:])
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "the server still listens after Ctrl-C"
    if password:
        assert password not in "".join(output), "the database password reached the logs"


@pytest.fixture(scope="module")
def nightly_run(served, real_csv, tmp_path_factory):
    """`pm25 trigger` of train-pm25/nightly with max_epochs=1, followed to its end by the command itself, while a
    two-night backtest (one training) runs beside it on the same worker."""
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    home = tmp_path_factory.mktemp(f"home-{served.backend}")
    with temporary_settings({PREFECT_API_URL: served.api_url}):
        backtest = run_deployment("backtest-pm25/on-demand", timeout=0, parameters={
            "source": str(real_csv), "home": str(tmp_path_factory.mktemp(f"backtest-{served.backend}")),
            "backtest_start": "2014-12-01", "backtest_end": "2014-12-02", "max_epochs": 1})
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main(["trigger", "--api-url", served.api_url, "--max-epochs", "1", "--source", str(real_csv),
                       "--home", str(home)])
    text = printed.getvalue()
    assert status == 0, text + "".join(served.output[-80:])
    flow_run_id = re.search(r"flow run ([0-9a-f-]{36})", text).group(1)
    return home, uuid.UUID(flow_run_id), text, backtest.id


@contextlib.contextmanager
def api_client(served: Served):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: served.api_url}), get_client(sync_client=True) as client:
        yield client


def test_deployments_are_scheduled_nightly_with_typed_parameters(served):
    with api_client(served) as client:
        nightly = client.read_deployment_by_name("train-pm25/nightly")
        on_demand = client.read_deployment_by_name("forecast-pm25/on-demand")
        backtest = client.read_deployment_by_name("backtest-pm25/on-demand")
    (schedule,) = nightly.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone, schedule.active) == ("0 2 * * *", "Asia/Shanghai", True)
    assert nightly.work_pool_name == on_demand.work_pool_name == "pm25-process"
    assert nightly.global_concurrency_limit.limit == 1
    properties = nightly.parameter_openapi_schema["properties"]
    assert properties["max_epochs"]["type"] == "integer" and properties["max_epochs"]["default"] == Settings().max_epochs
    assert properties["target_transform"]["enum"] == ["log1p", "identity"]
    assert not on_demand.schedules and not backtest.schedules
    replay = backtest.parameter_openapi_schema["properties"]
    assert replay["retrain_every"]["default"] == "28d" and replay["forecast_at"]["default"] == "02:00"
    assert {"format": "date", "type": "string"} in replay["backtest_start"]["anyOf"]


def test_triggered_nightly_run_completes_with_artifacts_registry_and_forecast(served, nightly_run):
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    home, flow_run_id, followed, _ = nightly_run
    assert "Running" in followed and followed.rstrip().endswith("Completed")
    assert re.search(r"\| INFO +\| .*Finished in state Completed", followed), "the run's logs were not streamed"
    assert served.alerts_for(flow_run_id) == []
    with api_client(served) as client:
        flow_run = client.read_flow_run(flow_run_id)
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    assert flow_run.state.is_completed() and flow_run.name.startswith("train PRSA_data_2010.1.1-2014.12.31.csv")
    assert flow_run.parameters["max_epochs"] == 1
    by_key = {artifact.key: artifact for artifact in artifacts}
    assert {"pm25-metrics", "pm25-report", "pm25-data-quality-us-embassy", "pm25-network-quality",
            "training-progress-network", "pm25-forecast"} <= set(by_key)
    assert by_key["pm25-metrics"].type == "table" and "lstm" in json.dumps(by_key["pm25-metrics"].data)
    assert by_key["pm25-report"].type == "markdown" and "](data:image/png;base64," in by_key["pm25-report"].data
    file_quality, network_quality = by_key["pm25-data-quality-us-embassy"], by_key["pm25-network-quality"]
    assert file_quality.type == "table" and "data_quality/files/US_Embassy-" in file_quality.description
    assert network_quality.type == "table" and "data_quality/index.html" in network_quality.description
    progress = by_key["training-progress-network"]
    assert progress.type == "progress" and float(progress.data) == 100.0
    registry = json.loads((home / "models" / "registry.json").read_text())
    assert registry["champion"] == 1 and registry["versions"][0]["run_id"].endswith(str(flow_run_id)[:8])
    forecast = json.loads((home / "reports" / "forecast" / "latest.json").read_text())
    assert forecast["model_version"] == 1 and len(forecast["forecasts"]) == 24


def test_run_page_in_the_ui_shows_the_metrics_table_and_inline_plots(served, nightly_run):
    executable = chromium_path()
    if executable is None:
        required_or_skip("Debian's chromium")
    _, flow_run_id, _, _ = nightly_run
    browser = HeadlessChromium(executable)
    artifacts_tab = "[...document.querySelectorAll('li.p-tab')].find(tab => tab.textContent.trim() === 'Artifacts')"

    def open_artifact(key: str) -> None:
        browser.open(f"{served.ui_url}/runs/flow-run/{flow_run_id}")
        browser.wait_for(f"!!{artifacts_tab}")
        browser.evaluate(f"{artifacts_tab}.click()")
        card = f"[...document.querySelectorAll('.artifact-card__title')].find(title => title.textContent.trim() === '{key}')"
        browser.wait_for(f"!!{card}")
        browser.evaluate(f"{card}.click()")

    try:
        open_artifact("pm25-metrics")
        # Wait for the artifact's own rows: until the click's navigation ends, the run page's tables are the ones shown.
        rows = "[...document.querySelectorAll('table tr')].map(row => row.innerText).filter(t => /\\d/.test(t))"
        assert browser.wait_for(f"{rows}.some(t => t.startsWith('lstm')) && {rows}.some(t => t.startsWith('persistence'))")
        browser.screenshot(SCREENSHOTS / f"{served.backend}-metrics-table.png")
        open_artifact("pm25-report")
        # forecast, error by horizon (and the loss curve)
        assert browser.wait_for("[...document.images].filter(image => image.src.startsWith('data:image/png') "
                                "&& image.complete && image.naturalWidth > 0).length >= 2")
        assert "PM2.5 forecast report" in browser.evaluate("document.body.innerText")
        browser.screenshot(SCREENSHOTS / f"{served.backend}-report.png")
        browser.open(f"{served.ui_url}/deployments")
        shown = ["nightly", "train-pm25", "At 02:00 AM every day", "on-demand", "forecast-pm25"]
        assert browser.wait_for(f"document.body && {json.dumps(shown)}.every(text => document.body.innerText.includes(text))")
    finally:
        browser.close()


def test_serve_applies_the_automations_and_the_training_limit_once(served):
    """`make serve` applied them; applying again replaces each by name instead of adding one."""
    from pm25.automations import WEBHOOK_BLOCK, ZOMBIE_AUTOMATION
    from tasks.model.train import TRAINING_TAG
    from tasks.operate.alerts import ALERT_AUTOMATION

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["automations", "apply", "--api-url", served.api_url, "--alert-webhook", served.webhook]) == 0
    assert f"updated automation {ZOMBIE_AUTOMATION!r}" in printed.getvalue()
    with api_client(served) as client:
        zombie, = client.read_automations_by_name(ZOMBIE_AUTOMATION)
        alert, = client.read_automations_by_name(ALERT_AUTOMATION)
        limit = client.read_concurrency_limit_by_tag(TRAINING_TAG)
        block = client.read_block_document_by_name(WEBHOOK_BLOCK, "webhook")
    assert zombie.enabled and zombie.trigger.posture == "Proactive" and zombie.trigger.within.total_seconds() == 90
    assert alert.enabled and alert.actions[0].block_document_id == block.id
    assert limit.concurrency_limit == 1


def test_trainings_of_the_nightly_run_and_a_backtest_take_turns_under_the_limit(served, nightly_run):
    """The nightly run and a backtest started together on one worker: every training (the tag pm25-train, limit 1)
    runs alone, whichever flow run it belongs to."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, TaskRunFilter, TaskRunFilterTags

    from tasks.model.train import TRAINING_TAG

    _, nightly_id, _, backtest_id = nightly_run
    backtest = wait_for_state(served, backtest_id, lambda state: state.is_final(), 600, "ended")
    assert backtest.state.is_completed(), backtest.state
    with api_client(served) as client:
        nightly = client.read_flow_run(nightly_id)
        trainings = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[nightly_id, backtest_id])),
                                          task_run_filter=TaskRunFilter(tags=TaskRunFilterTags(all_=[TRAINING_TAG])))
    assert max(nightly.start_time, backtest.start_time) < min(nightly.end_time, backtest.end_time), "the runs did not overlap"
    assert {run.flow_run_id for run in trainings} == {nightly_id, backtest_id} and len(trainings) >= 3
    assert all(run.state.is_completed() for run in trainings)
    ordered = sorted(trainings, key=lambda run: run.start_time)
    assert all(earlier.end_time <= later.start_time for earlier, later in zip(ordered, ordered[1:])), \
        [(run.name, run.start_time.time(), run.end_time.time()) for run in ordered]


def start_nightly(served: Served, real_csv, home, **options) -> uuid.UUID:
    """A train-pm25/nightly run that would train for long (200 epochs), started without waiting; returns its id."""
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: served.api_url}):
        flow_run = run_deployment("train-pm25/nightly", timeout=0, parameters={
            "source": str(real_csv), "home": str(home), "max_epochs": 200, "patience": 200}, **options)
    return flow_run.id


def wait_for_state(served: Served, flow_run_id: uuid.UUID, done, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    with api_client(served) as client:
        while time.monotonic() < deadline:
            run = client.read_flow_run(flow_run_id)
            if run.state is not None and done(run.state):
                return run
            time.sleep(1)
    pytest.fail(f"flow run {flow_run_id} not {what} within {timeout:.0f} s (state {run.state.name if run.state else None}); "
                + "".join(served.output[-40:]))


def heartbeat_seen(served: Served, flow_run_id: uuid.UUID) -> bool:
    import httpx

    response = httpx.post(f"{served.api_url}/events/filter", json={"filter": {
        "event": {"name": ["prefect.flow-run.heartbeat"]}, "resource": {"id": [f"prefect.flow-run.{flow_run_id}"]},
        "occurred": {"since": "2000-01-01T00:00:00Z"}}})
    response.raise_for_status()
    return bool(response.json()["events"])


def worker_and_flow_processes(served: Served, flow_run_id: uuid.UUID):
    """The worker `pm25 serve` runs, and the process that runs `flow_run_id` (the run's infrastructure pid, which
    the worker records on it)."""
    import psutil

    (worker,) = [process for process in psutil.Process(served.pid).children()
                 if "worker" in process.cmdline() and "start" in process.cmdline()]
    deadline = time.monotonic() + 60
    with api_client(served) as client:
        while not (recorded := client.read_flow_run(flow_run_id).infrastructure_pid):
            assert time.monotonic() < deadline, "the worker recorded no process for the run"
            time.sleep(0.5)
    flow_process = psutil.Process(int(recorded.rsplit(":", 1)[-1]))
    assert flow_process in worker.children(recursive=True)
    return worker, flow_process


def one_alert(served: Served, flow_run_id: uuid.UUID, settle_seconds: float = 15) -> dict:
    """The alert for `flow_run_id`, once it has come and nothing more came in `settle_seconds`."""
    deadline = time.monotonic() + 60
    while not served.alerts_for(flow_run_id) and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(settle_seconds)  # a second alert (the run's own hook, or a second firing) would come by now
    alerts = served.alerts_for(flow_run_id)
    assert len(alerts) == 1, alerts
    return alerts[0]


@pytest.mark.slow
def test_a_run_killed_with_its_worker_is_marked_crashed_by_the_server_and_alerted_once(served, real_csv, tmp_path):
    """SIGKILL to the flow's process and to its worker: nothing is left to report the run, so the server's zombie
    rule marks it Crashed once its heartbeats stop; `pm25 serve` starts a new worker."""
    from pm25.automations import HEARTBEAT_SECONDS, ZOMBIE_MISSED_HEARTBEATS

    flow_run_id = start_nightly(served, real_csv, tmp_path / "home")
    wait_for_state(served, flow_run_id, lambda state: state.is_running(), 120, "running")
    worker, flow_process = worker_and_flow_processes(served, flow_run_id)
    deadline = time.monotonic() + 60
    while not heartbeat_seen(served, flow_run_id):
        assert time.monotonic() < deadline, "the run sent no heartbeat"
        time.sleep(1)
    for process in (flow_process, worker):
        process.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    run = wait_for_state(served, flow_run_id, lambda state: state.is_final(), 240, "ended")
    assert run.state.is_crashed() and "no heartbeat" in run.state.message
    assert time.monotonic() - killed < (ZOMBIE_MISSED_HEARTBEATS + 3) * HEARTBEAT_SECONDS
    alert = one_alert(served, flow_run_id)
    assert alert["state"] == "Crashed" and alert["event"] == "pm25.flow-run.crashed" and alert["flow"] == "train-pm25"
    assert alert["flow_run"] == run.name and "no heartbeat" in alert["message"]
    assert any("starting a new one" in line for line in served.output)


@pytest.mark.slow
def test_a_flow_process_killed_alone_is_reported_by_its_worker_and_alerted_once(served, real_csv, tmp_path):
    """The worker survives and reports the run Crashed; its crash hook leaves the post to the server's automation."""
    flow_run_id = start_nightly(served, real_csv, tmp_path / "home")
    wait_for_state(served, flow_run_id, lambda state: state.is_running(), 120, "running")
    _, flow_process = worker_and_flow_processes(served, flow_run_id)
    flow_process.send_signal(signal.SIGKILL)
    run = wait_for_state(served, flow_run_id, lambda state: state.is_final(), 120, "ended")
    assert run.state.is_crashed()
    alert = one_alert(served, flow_run_id)
    assert alert["state"] == "Crashed" and alert["flow_run_id"] == str(flow_run_id)


@pytest.mark.slow
def test_a_run_past_its_timeout_ends_timed_out_and_is_alerted_once(served, real_csv, tmp_path):
    """PM25_TRAIN_TIMEOUT_SECONDS, given to this run's process through the deployment's job variables."""
    flow_run_id = start_nightly(served, real_csv, tmp_path / "home",
                                job_variables={"env": {"PM25_TRAIN_TIMEOUT_SECONDS": "3"}})
    run = wait_for_state(served, flow_run_id, lambda state: state.is_final(), 180, "ended")
    assert run.state.name == "TimedOut", run.state
    alert = one_alert(served, flow_run_id)
    assert alert["state"] == "TimedOut" and alert["event"] == "pm25.flow-run.timedout"
