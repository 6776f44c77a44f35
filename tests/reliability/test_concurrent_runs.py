"""Four ad-hoc runs started at once against one Prefect server (SQLite, then PostgreSQL), sharing one home:
all complete, each in its own run folder, the registry stays consistent, and reports/latest always points
at a complete run. Timings go to reports/reliability/ for the record."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from servers import free_loopback_port, postgres_database

from pm25.serve import LocalPrefect
from tasks.core import storage
from tasks.core.settings import PROJECT_ROOT

RUNS = 4
RUN_FILES = ("metrics.json", "predictions.parquet", "forecast.png", "error_by_horizon.png", "loss.png", "report.md")
MEASUREMENTS = PROJECT_ROOT / "reports" / "reliability"


def watch_latest(latest: Path, stop: threading.Event, seen: list[str], broken: list[str]) -> None:
    """Keep resolving reports/latest; every run folder it ever points at must already be complete."""
    while not stop.is_set():
        if latest.exists():
            target = latest.resolve()
            missing = [name for name in RUN_FILES if not (target / name).is_file()]
            (broken if missing else seen).append(f"{target.name} {missing}" if missing else target.name)
        time.sleep(0.05)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_four_runs_at_once_on_one_server(backend, real_csv, tmp_path):
    with contextlib.ExitStack() as stack:
        env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
        if backend == "postgres":
            env["PREFECT_API_DATABASE_CONNECTION_URL"], _ = stack.enter_context(postgres_database())
        server = LocalPrefect(port=free_loopback_port(), environment=env, log_dir=tmp_path)
        stack.callback(server.stop)
        server.start_server()

        home = tmp_path / "home"
        stop, seen, broken = threading.Event(), [], []
        watcher = threading.Thread(target=watch_latest, args=(home / "reports" / "latest", stop, seen, broken))
        watcher.start()
        started = time.monotonic()
        runs = [subprocess.Popen([sys.executable, "-m", "pm25.cli", "run", "--source", str(real_csv), "--home", str(home),
                                  "--max-epochs", "1", "--seed", str(seed), "--json"], cwd=PROJECT_ROOT, env=server.env(),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for seed in range(1, RUNS + 1)]
        outcomes = [run.communicate(timeout=900) for run in runs]
        wall_seconds = time.monotonic() - started
        stop.set()
        watcher.join()

    for run, (out, err) in zip(runs, outcomes):
        assert run.returncode == 0, err[-3000:]
    results = [json.loads(out) for out, _ in outcomes]
    run_dirs = {result["run_dir"] for result in results}
    assert len(run_dirs) == RUNS and all(all((Path(folder) / name).is_file() for name in RUN_FILES) for folder in run_dirs)
    registry = json.loads((home / "models" / "registry.json").read_text())
    versions = registry["versions"]
    assert sorted(entry["version"] for entry in versions) == list(range(1, RUNS + 1))
    assert len({entry["model_dir"] for entry in versions}) == RUNS and registry["champion"] in range(1, RUNS + 1)
    for entry in versions:  # each decision was taken against the champion of its time, never a later one
        assert entry["challenge"].get("champion_version", 0) < entry["version"]
    assert not broken, broken
    assert seen and (home / "reports" / "latest").resolve() in {Path(folder).resolve() for folder in run_dirs}
    server_log = (tmp_path / "server.log").read_text()
    assert "database is locked" not in server_log
    storage.write_json(MEASUREMENTS / f"concurrent-runs-{backend}.json", {
        "backend": backend, "runs": RUNS, "wall_seconds": round(wall_seconds, 1),
        "server_log_errors": sum("ERROR" in line for line in server_log.splitlines()),
        "latest_observations": len(seen),
    })
