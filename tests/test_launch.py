"""`pm25` as installed: a flow command with no Prefect server configured runs on a temporary server, started
first or left by an earlier command."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prefect.settings import get_current_settings

from pm25.launch import may_need_temporary_server, send_queued_logs_and_events, without_heartbeats
from pm25.temporary_server import Registry, answers, settings_key
from tasks.core.settings import PROJECT_ROOT

ADOPT = ("import sys; sys.path.insert(0, sys.argv[1]); from pm25.temporary_server import TemporaryServer; "
         "server = TemporaryServer(0); print('adopted' if server.adopt() else 'left alone'); "
         "server.release(stop=True)")
SERVER_LINE = re.compile(r"pm25: (started|reusing) Prefect's temporary server at (\S+?)[;,]")


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
    from pm25.temporary_server import TemporaryServer

    monkeypatch.setenv("PREFECT_API_DATABASE_CONNECTION_URL", f"sqlite+aiosqlite:///{tmp_path}/missing/folder/prefect.db")
    server = TemporaryServer(0)
    try:
        with pytest.raises(RuntimeError, match=r"(?s)temporary server exited with code \d+ while starting; it wrote:.*"
                                               r"unable to open database file"):
            server.wait_until_ready()
    finally:
        server.release(stop=True)


def test_a_server_stopped_while_it_starts_has_ended_when_release_returns(monkeypatch, tmp_path):
    from pm25.temporary_server import TemporaryServer

    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))  # its own database: nothing else starts a server on it
    server = TemporaryServer(0)
    server.release(stop=True)
    assert server.process.poll() is not None  # not left behind, migrating the database the next server starts on


def test_an_api_named_in_prefects_settings_files_is_kept(tmp_path):
    def adopt_in(folder) -> str:
        done = subprocess.run([sys.executable, "-c", ADOPT, str(PROJECT_ROOT)], cwd=folder, env=environment_without_api(),
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert adopt_in(tmp_path) == "adopted"
    (tmp_path / "prefect.toml").write_text('[api]\nurl = "http://127.0.0.1:4200/api"\n', encoding="utf-8")
    assert adopt_in(tmp_path) == "left alone"


def validate_command(real_csv, home, idle_seconds: float) -> tuple[str, str]:
    """`pm25 validate` with no Prefect API configured; returns how it got its server and that server's URL."""
    done = subprocess.run([sys.executable, "-m", "pm25.launch", "validate", "--source", str(real_csv), "--home",
                           str(home), "--json"], cwd=PROJECT_ROOT, env=environment_without_api() | {
                               "PM25_SERVER_IDLE_SECONDS": str(idle_seconds)}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert '"passed": true' in done.stdout
    assert "Starting temporary server" not in done.stdout + done.stderr  # not Prefect's own, started after the imports
    return SERVER_LINE.search(done.stderr).groups()


def test_a_flow_command_runs_on_the_server_it_started_which_ends_with_it(real_csv, tmp_path):
    how, api_url = validate_command(real_csv, tmp_path / "home", idle_seconds=0)
    assert how == "started"
    deadline = time.monotonic() + 30
    while answers(api_url, timeout=1) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not answers(api_url, timeout=1)


def test_a_second_command_reuses_the_server_which_retires_once_idle(real_csv, tmp_path):
    first = validate_command(real_csv, tmp_path / "home", idle_seconds=3)
    second = validate_command(real_csv, tmp_path / "home", idle_seconds=3)
    assert first[0] == "started" and second == ("reusing", first[1])
    assert answers(first[1], timeout=1)
    deadline = time.monotonic() + 30
    while answers(first[1], timeout=1) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not answers(first[1], timeout=1)
    port = int(first[1].split(":")[2].split("/")[0])
    records = (Path(os.environ["PREFECT_HOME"]) / "pm25-servers").glob("*.json")
    assert port not in [json.loads(record.read_text())["port"] for record in records]


def test_a_server_retires_only_when_no_command_holds_its_lease_and_only_its_own_record(tmp_path):
    registry = Registry(tmp_path, "key")
    registry.write(pid=111, port=5000)
    lease = registry.take_lease(5000)
    assert not registry.lease_is_free(5000) and not registry.retire(5000, pid=111)
    assert registry.read() == {"pid": 111, "port": 5000}
    lease.close()
    assert registry.retire(5000, pid=111) and registry.read() is None
    registry.write(pid=222, port=6000)
    registry.take_lease(5001).close()
    assert registry.retire(5001, pid=333)  # a server whose record was replaced leaves the new record alone
    assert registry.read() == {"pid": 222, "port": 6000}


def test_leases_no_command_holds_are_removed(tmp_path):
    registry = Registry(tmp_path, "key")
    held = registry.take_lease(5000)
    registry.take_lease(5001).close()
    registry.remove_unheld_leases()
    assert sorted(path.name for path in tmp_path.glob("*.lease")) == ["key-5000.lease"]
    held.close()


def test_the_server_key_follows_prefects_settings(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    key = settings_key()
    assert settings_key() == key
    monkeypatch.setenv("PREFECT_API_DATABASE_CONNECTION_URL", f"sqlite+aiosqlite:///{tmp_path}/other.db")
    assert settings_key() != key
    monkeypatch.delenv("PREFECT_API_DATABASE_CONNECTION_URL")
    (tmp_path / "prefect.toml").write_text("[server]\nport = 4300\n", encoding="utf-8")
    assert settings_key() != key
