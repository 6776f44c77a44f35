"""The backtest rows of `make bench` (`BENCH_ARGS="--only backtest"`): the 2014 replay on the embassy file.

- consistency: `pm25 run` with the defaults, then in the same home a backtest of 2014 with hourly origins and no
  retraining; its RMSE by lead beside the run's test RMSE on the same cells (origins from 2014-01-01 00:00);
- dask-1 and dask-2: a backtest with a retraining every 28 days (14 trainings), nightly origins at 02:00, on a
  local Dask cluster of one and of two single-threaded workers, each in a fresh home;
- resume: the dask-2 backtest in a fresh home, killed once half its retrain origins hold a model, then started
  again: the wall time of the second start;
- weekly and never: the same year with a retraining every 7 days and without retraining, in the dask-2 home (the
  trainings they share with it are reused, which is how a user would run them);
- hourly-28d and hourly-7d: hourly origins (from 2014-01-01 00:00) with a retraining every 28 and every 7 days, on
  two workers, in one fresh home (the 7-day row reuses the 28-day row's trainings: every 28th day is a 7th).

Each row keeps its own date and time; `--backtests` picks rows, and rows merge into reports/bench/bench_backtest.json.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.core import storage

REPORTED = (1, 3, 6, 12, 24)
YEAR = ["--start", "2014-01-01", "--end", "2014-12-31"]
ROWS = ("consistency", "dask-1", "dask-2", "resume", "weekly", "never", "hourly-28d", "hourly-7d")


def pm25(*arguments: str) -> list[str]:
    return [str(Path(sys.executable).parent / "pm25"), *arguments]


def verification_row(result: dict, wall_seconds: float) -> dict:
    """What a row reports of a backtest: timing, trainings, RMSE and skill by lead, categories, coverage."""
    verification = storage.read_json(Path(result["verification"]))
    by_lead = {row["lead_hours"]: row for row in verification["by_lead"]}
    persistence = {row["lead_hours"]: row for row in verification["persistence_by_lead"]}
    categories = verification["categories"]
    return {
        "measured_at": time.strftime("%Y-%m-%d %H:%M"), "wall_seconds": wall_seconds,
        "origins": result["origins"], "retrain_origins": result["retrain_origins"], "trained": result["trained"],
        "promoted": result["promoted"],
        "n": {f"h{h}": by_lead[h]["n"] for h in REPORTED},
        "rmse": {f"h{h}": round(by_lead[h]["rmse"], 2) for h in REPORTED},
        "persistence_rmse": {f"h{h}": round(persistence[h]["rmse"], 2) for h in REPORTED},
        "skill": {f"h{h}": round(by_lead[h]["skill"], 3) for h in REPORTED},
        "min_skill": round(min(row["skill"] for row in verification["by_lead"]), 3),
        "coverage_80": round(float(np.mean([row["coverage_80"] for row in verification["by_lead"]])), 3),
        "category_accuracy": round(categories["accuracy"], 3),
        "persistence_category_accuracy": round(categories["persistence_accuracy"], 3),
        "mean_category_accuracy": round(categories["mean_accuracy"], 3),
        "csi_75": round(categories["exceedance"]["75"]["model"]["csi"], 3),
        "persistence_csi_75": round(categories["exceedance"]["75"]["persistence"]["csi"], 3),
        "csi_150": round(categories["exceedance"]["150"]["model"]["csi"], 3),
        "persistence_csi_150": round(categories["exceedance"]["150"]["persistence"]["csi"], 3),
        "champions": [{"origin": entry["origin"][:10], "promoted": entry["promoted"]} for entry in verification["champions"]],
    }


def training_pace(home: Path) -> dict:
    """The trainings' own time per epoch (from each model's training.json): how much slower a training runs while
    another one shares the machine's cores."""
    summaries = [storage.read_json(path) for path in home.glob("models/*/training.json")]
    epochs = sum(summary["epochs_run"] for summary in summaries)
    seconds = sum(summary["seconds"] for summary in summaries)
    return {"training_epochs": epochs, "training_seconds": round(seconds, 1),
            "seconds_per_epoch": round(seconds / epochs, 2)}


def backtest(home: Path, source: str, env: dict[str, str], *flags: str) -> dict:
    started = time.perf_counter()
    done = subprocess.run(pm25("backtest", "--json", "--source", source, "--home", str(home), *YEAR, *flags), env=env,
                          check=True, stdout=subprocess.PIPE, text=True)
    seconds = round(time.perf_counter() - started, 1)
    return verification_row(_json(done.stdout), seconds)


def _json(text: str) -> dict:
    import json

    return json.loads(text[text.index("{"):])


class LocalDask:
    """A local Dask cluster of `workers` single-threaded worker processes, for PM25_DASK_ADDRESS."""

    def __init__(self, workers: int):
        from distributed import LocalCluster

        self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)

    def __enter__(self) -> str:
        return self.cluster.scheduler_address

    def __exit__(self, *exc) -> None:
        self.cluster.close()


def consistency(work: Path, source: str, env: dict[str, str]) -> dict:
    """The fixed model of `pm25 run` against the backtest's replay of it: the same cells, RMSE by horizon."""
    home = work / "consistency"
    started = time.perf_counter()
    run = _json(subprocess.run(pm25("run", "--json", "--source", source, "--home", str(home)), env=env, check=True,
                               stdout=subprocess.PIPE, text=True).stdout)
    run_seconds = round(time.perf_counter() - started, 1)
    row = backtest(home, source, env, "--every", "1h", "--retrain-every", "0")
    predictions = pd.read_parquet(Path(run["run_dir"]) / "predictions.parquet")
    first_origin = pd.Timestamp("2014-01-01 00:00", tz="Asia/Shanghai")
    same = predictions[predictions["scored"] & (predictions["origin"] >= first_origin)]
    by_horizon = {h: group for h, group in same.groupby("horizon")}
    fixed = {f"h{h}": round(float(np.sqrt(np.mean((by_horizon[h]["lstm"] - by_horizon[h]["observed"]) ** 2))), 2)
             for h in REPORTED}
    metrics = storage.read_json(Path(run["run_dir"]) / "metrics.json")
    return {**row, "run_seconds": run_seconds, "run_test_rmse_same_cells": fixed,
            "run_test_rmse_printed": {f"h{h}": round(metrics["models"]["lstm"][f"h{h}"]["rmse"], 2) for h in REPORTED},
            "run_cells": {f"h{h}": int(len(by_horizon[h])) for h in REPORTED}}


def resume(work: Path, source: str, env: dict[str, str], address: str) -> dict:
    """Kill the backtest once half its retrain origins hold a model; time the second start."""
    home = work / "resume"
    command = pm25("backtest", "--json", "--source", source, "--home", str(home), *YEAR)
    process = subprocess.Popen(command, env=env | {"PM25_TASK_RUNNER": "dask", "PM25_DASK_ADDRESS": address},
                               stdout=subprocess.DEVNULL, start_new_session=True)
    started = time.perf_counter()
    while len(list(home.glob("models/*/training.json"))) < 7:
        if process.poll() is not None:
            raise RuntimeError("the backtest ended before it could be killed")
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    killed_after = round(time.perf_counter() - started, 1)
    done = len(list(home.glob("models/*/training.json")))
    row = backtest(home, source, env | {"PM25_TASK_RUNNER": "dask", "PM25_DASK_ADDRESS": address})
    return {**row, "killed_after_seconds": killed_after, "models_before_resume": done}


def backtest_rows(work: Path, source: str, env: dict[str, str], rows: list[str], output: Path) -> dict:
    """Run the chosen rows, merging each into `output` as soon as it is measured."""
    report = storage.read_json(output) if output.exists() else {}
    report.setdefault("machine", f"{os.cpu_count()} CPU cores, no GPU")
    measured = report.setdefault("rows", {})

    def keep(name: str, row: dict) -> None:
        measured[name] = row
        storage.write_json(output, report)
        print(name, row, flush=True)

    if "consistency" in rows:
        keep("consistency", consistency(work, source, env))
    for workers in (1, 2):
        if f"dask-{workers}" in rows:
            with LocalDask(workers) as address:
                home = work / f"dask_{workers}"
                row = backtest(home, source, env | {"PM25_TASK_RUNNER": "dask", "PM25_DASK_ADDRESS": address})
                keep(f"dask-{workers}", {**row, **training_pace(home)})
    with LocalDask(2) as address:
        dask = env | {"PM25_TASK_RUNNER": "dask", "PM25_DASK_ADDRESS": address}
        if "resume" in rows:
            keep("resume", resume(work, source, env, address))
        if "weekly" in rows:
            keep("weekly", backtest(work / "dask_2", source, dask, "--retrain-every", "7d"))
        if "never" in rows:
            keep("never", backtest(work / "dask_2", source, dask, "--retrain-every", "0"))
        for every in ("28d", "7d"):
            if f"hourly-{every}" in rows:
                keep(f"hourly-{every}", backtest(work / "hourly", source, dask, "--every", "1h", "--retrain-every", every))
    return report


def backtest_markdown(report: dict) -> str:
    rows = report.get("rows", {})
    lines = ["| backtest of 2014 (embassy) | trainings (new) | wall s | RMSE 1 / 6 / 24 h | skill 1 / 6 / 24 h (min) | "
             "category accuracy (persistence) | CSI > 75 (persistence) |", "|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['retrain_origins']} ({row['trained']}) | {row['wall_seconds']} | "
                     f"{row['rmse']['h1']} / {row['rmse']['h6']} / {row['rmse']['h24']} | "
                     f"{row['skill']['h1']} / {row['skill']['h6']} / {row['skill']['h24']} ({row['min_skill']}) | "
                     f"{row['category_accuracy']} ({row['persistence_category_accuracy']}) | "
                     f"{row['csi_75']} ({row['persistence_csi_75']}) |")
    if "consistency" in rows:
        row = rows["consistency"]
        lines += ["", "Consistency, RMSE by horizon: backtest (hourly origins, no retraining) / `pm25 run` on the same "
                  "cells / `pm25 run` as printed: " + "; ".join(
                      f"{h}: {row['rmse'][h]} / {row['run_test_rmse_same_cells'][h]} / {row['run_test_rmse_printed'][h]}"
                      for h in row["rmse"])]
    return "\n".join(lines) + "\n"
