"""`pm25` as installed: a flow command with no Prefect server configured starts its own temporary server first."""

import os
import subprocess
import sys

import pytest
from prefect.settings import get_current_settings

from flows.launch import may_need_temporary_server, send_queued_logs_and_events, without_heartbeats
from tasks.settings import PROJECT_ROOT

ADOPT = ("import sys; sys.path.insert(0, sys.argv[1]); from flows.launch import TemporaryServer; "
         "server = TemporaryServer(); print('adopted' if server.adopt() else 'left alone'); server.stop()")


def environment_without_api() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}


def test_only_flow_commands_without_an_api_in_the_environment_spawn_one(monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert may_need_temporary_server(["run", "--max-epochs", "1"]) and may_need_temporary_server(["forecast"])
    assert not may_need_temporary_server(["models"]) and not may_need_temporary_server(["run", "--help"])
    assert not may_need_temporary_server([])
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    assert not may_need_temporary_server(["run"])


def test_flow_runs_on_a_temporary_server_send_no_heartbeats():
    assert get_current_settings().flows.heartbeat_frequency is not None  # Prefect's default: every 180 s
    with without_heartbeats():
        assert get_current_settings().flows.heartbeat_frequency is None
    assert get_current_settings().flows.heartbeat_frequency is not None


def test_logs_still_queued_when_a_flow_ends_reach_the_server_before_it_is_stopped(prefect_server):
    """Prefect batches a run's logs to the API every few seconds; pm25 sends the rest before stopping its server."""
    from prefect import flow, get_run_logger
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    @flow
    def say_something():
        get_run_logger().info("the last words of this run")

    flow_run_id = say_something(return_state=True).state_details.flow_run_id
    send_queued_logs_and_events()
    with get_client(sync_client=True) as client:
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    assert "the last words of this run" in [log.message for log in logs]


def test_a_server_that_fails_to_start_is_reported_with_what_it_wrote(monkeypatch, tmp_path):
    from flows.launch import TemporaryServer

    monkeypatch.setenv("PREFECT_API_DATABASE_CONNECTION_URL", f"sqlite+aiosqlite:///{tmp_path}/missing/folder/prefect.db")
    server = TemporaryServer()
    try:
        with pytest.raises(RuntimeError, match=r"(?s)temporary server exited with code \d+ while starting; it wrote:.*"
                                               r"unable to open database file"):
            server.wait_until_ready()
    finally:
        server.stop()


def test_an_api_named_in_prefects_settings_files_is_kept(tmp_path):
    def adopt_in(folder) -> str:
        done = subprocess.run([sys.executable, "-c", ADOPT, str(PROJECT_ROOT)], cwd=folder, env=environment_without_api(),
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert adopt_in(tmp_path) == "adopted"
    (tmp_path / "prefect.toml").write_text('[api]\nurl = "http://127.0.0.1:4200/api"\n', encoding="utf-8")
    assert adopt_in(tmp_path) == "left alone"


def test_a_flow_command_runs_on_the_server_it_started(real_csv, tmp_path):
    done = subprocess.run([sys.executable, "-m", "flows.launch", "validate", "--source", str(real_csv), "--home",
                           str(tmp_path / "home")], cwd=PROJECT_ROOT, env=environment_without_api(), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert '"passed": true' in done.stdout
    assert "Starting temporary server" not in done.stdout + done.stderr  # not Prefect's own, started after the imports
