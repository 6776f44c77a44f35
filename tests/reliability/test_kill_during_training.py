"""SIGKILL in the middle of training: the registry, the champion and the latest report are untouched, and the
next run with the same settings retrains (the half-written model folder is not taken for a cached model)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from pm25.cli import main
from tasks.core.settings import PROJECT_ROOT

pytestmark = pytest.mark.usefixtures("prefect_server")

STARTUP_TIMEOUT_SECONDS = 240


def test_run_killed_during_training_damages_nothing_and_the_next_run_completes(trained_home, real_csv, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(trained_home[0], home, symlinks=True)
    registry_before = (home / "models" / "registry.json").read_bytes()
    latest_before = (home / "reports" / "latest").resolve()
    models_before = {path.name for path in (home / "models").iterdir() if path.is_dir()}
    arguments = ["run", "--source", str(real_csv), "--home", str(home), "--max-epochs", "2", "--seed", "7"]

    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    with open(tmp_path / "killed.log", "wb") as log:
        victim = subprocess.Popen([sys.executable, "-m", "pm25.cli", *arguments], cwd=PROJECT_ROOT, env=env,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not any((folder / "training_log.csv").exists() for folder in (home / "models").iterdir()
                      if folder.name not in models_before):
            assert victim.poll() is None and time.monotonic() < deadline, (tmp_path / "killed.log").read_text()[-3000:]
            time.sleep(0.1)
        os.killpg(victim.pid, signal.SIGKILL)  # the run and its temporary Prefect server
        victim.wait(30)

    (partial,) = [folder for folder in (home / "models").iterdir() if folder.is_dir() and folder.name not in models_before]
    assert not (partial / "training.json").exists() and not (partial / "model.keras").exists()
    assert (home / "models" / "registry.json").read_bytes() == registry_before
    assert (home / "reports" / "latest").resolve() == latest_before

    assert main(arguments) == 0
    assert (partial / "training.json").exists() and (partial / "model.keras").exists()
    registry = json.loads((home / "models" / "registry.json").read_text())
    before = json.loads(registry_before)
    assert registry["versions"][: len(before["versions"])] == before["versions"]
    assert registry["versions"][-1]["model_dir"] == partial.name
    assert (home / "reports" / "latest").resolve() != latest_before
