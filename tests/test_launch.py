"""`pm25` as installed: a flow command without PREFECT_API_URL starts its own temporary server first."""

import os
import subprocess
import sys

from flows.launch import needs_temporary_server
from tasks.settings import PROJECT_ROOT


def test_only_flow_commands_without_a_configured_server_start_one(monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert needs_temporary_server(["run", "--max-epochs", "1"]) and needs_temporary_server(["forecast"])
    assert not needs_temporary_server(["models"]) and not needs_temporary_server(["run", "--help"])
    assert not needs_temporary_server([])
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    assert not needs_temporary_server(["run"])


def test_a_flow_command_runs_on_the_server_it_started(real_csv, tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
    done = subprocess.run([sys.executable, "-m", "flows.launch", "validate", "--source", str(real_csv), "--home",
                           str(tmp_path / "home")], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert '"passed": true' in done.stdout
    assert "Starting temporary server" not in done.stdout + done.stderr  # not Prefect's own, started after the imports
