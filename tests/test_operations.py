"""End to end, as an operator runs it: `pm25 serve` starts a real Prefect server (SQLite, then PostgreSQL), the
work pool, the deployments and a worker on a free loopback port; `pm25 trigger` runs train-pm25/nightly with
max_epochs=1 and follows it; then the API, the files and the UI (headless Chromium) are checked."""

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
from servers import free_loopback_port, postgres_database, required_or_skip

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


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def served(request, tmp_path_factory):
    """`pm25 serve` in its own process, stopped with Ctrl-C (SIGINT) at the end, which must exit 0."""
    with contextlib.ExitStack() as stack:
        env = {**os.environ, "PREFECT_HOME": str(tmp_path_factory.mktemp(f"prefect-{request.param}"))}
        password = None
        if request.param == "postgres":
            env["PREFECT_API_DATABASE_CONNECTION_URL"], password = stack.enter_context(postgres_database())
        yield from serve_process(request.param, env, password)


def serve_process(backend: str, env: dict[str, str], password: str | None):
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
    yield Served(backend, f"http://127.0.0.1:{port}/api", f"http://127.0.0.1:{port}", output)
    process.send_signal(signal.SIGINT)
    assert process.wait(90) == 0, "".join(output[-40:])
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "the server still listens after Ctrl-C"
    if password:
        assert password not in "".join(output), "the database password reached the logs"


@pytest.fixture(scope="module")
def nightly_run(served, real_csv, tmp_path_factory):
    """`pm25 trigger` of train-pm25/nightly with max_epochs=1, followed to its end by the command itself."""
    home = tmp_path_factory.mktemp(f"home-{served.backend}")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main(["trigger", "--api-url", served.api_url, "--max-epochs", "1", "--source", str(real_csv),
                       "--home", str(home)])
    text = printed.getvalue()
    assert status == 0, text + "".join(served.output[-80:])
    flow_run_id = re.search(r"flow run ([0-9a-f-]{36})", text).group(1)
    return home, uuid.UUID(flow_run_id), text


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

    home, flow_run_id, followed = nightly_run
    assert "Running" in followed and followed.rstrip().endswith("Completed")
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
    _, flow_run_id, _ = nightly_run
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
