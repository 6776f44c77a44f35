"""`make sweep`: choose the model on the validation span only.

Runs `pm25 run` for each candidate configuration and seed (one shared PM25_HOME, so the data are ingested
and preprocessed once; one running Prefect server), reads the "validation" section of each run's
metrics.json, and writes reports/sweep/sweep.json and sweep.md: the LSTM's RMSE as a share of
persistence's on the validation span at 1, 6 and 24 h and averaged over every horizon, beside gbm's.
The test year's scores are never read here.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from benchmarks.benchmark import create_prefect_database, pm25_run, running_server, write_outputs  # noqa: E402
from tasks.core import storage  # noqa: E402
from tasks.core.settings import Settings  # noqa: E402

OUTPUT_DIR = PROJECT_ROOT / "reports" / "sweep"
RATIO_HORIZONS = (1, 6, 24)
# Candidate name -> `pm25 run` flags. Every candidate states the model choices it sweeps, so its row
# means the same whatever the current defaults are; the first row is the earlier default.
EARLIER_DEFAULT = ["--ensemble-size", "2", "--lstm-units", "64", "--horizon-weight-power", "1.0", "--weight-averaging", "0"]
CANDIDATES = {
    "2 × LSTM(64), loss weight h^-1": EARLIER_DEFAULT,
    "one network": [*EARLIER_DEFAULT, "--ensemble-size", "1"],
    "4 networks": [*EARLIER_DEFAULT, "--ensemble-size", "4"],
    "loss weight h^-1.5": [*EARLIER_DEFAULT, "--horizon-weight-power", "1.5"],
    "weights averaged (momentum 0.99)": [*EARLIER_DEFAULT, "--weight-averaging", "0.99"],
    "96 units": [*EARLIER_DEFAULT, "--lstm-units", "96"],
    "128 units": [*EARLIER_DEFAULT, "--lstm-units", "128"],
    "96 units, h^-1.5": [*EARLIER_DEFAULT, "--lstm-units", "96", "--horizon-weight-power", "1.5"],
    "96 units, h^-1.5, weights averaged (0.99)": [*EARLIER_DEFAULT, "--lstm-units", "96", "--horizon-weight-power", "1.5",
                                                  "--weight-averaging", "0.99"],
    "h^-1.5, weights averaged (0.99)": [*EARLIER_DEFAULT, "--horizon-weight-power", "1.5", "--weight-averaging", "0.99"],
    "96 units, weights averaged (0.99)": [*EARLIER_DEFAULT, "--lstm-units", "96", "--weight-averaging", "0.99"],
}
SEEDS = (42, 7, 1)


def validation_ratios(run: dict) -> dict[str, dict[str, float]]:
    """Per model: RMSE / persistence's RMSE on the validation span at RATIO_HORIZONS, and their mean over
    every horizon the model forecasts; for the LSTM also its largest RMSE / gbm's RMSE over the reported
    horizons (below 1: ahead of gbm at every one)."""
    models = storage.read_json(Path(run["run_dir"]) / "metrics.json")["validation"]["models"]
    reported = [key for key in models["gbm"] if key.startswith("h")]
    persistence = np.array(models["persistence"]["rmse_by_horizon"], dtype="float64")
    ratios = {}
    for name in ("lstm", "gbm"):
        by_horizon = np.array([np.nan if value is None else value for value in models[name]["rmse_by_horizon"]]) / persistence
        ratios[name] = {**{f"h{h}": round(float(by_horizon[h - 1]), 4) for h in RATIO_HORIZONS},
                        "mean": round(float(np.nanmean(by_horizon)), 4)}
    ratios["lstm"]["worst_vs_gbm"] = round(max(models["lstm"][key]["rmse"] / models["gbm"][key]["rmse"] for key in reported), 4)
    return ratios


def mean_ratios(ratios: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(float(np.mean([entry[key] for entry in ratios])), 4) for key in ratios[0]}


def summarise(runs: list[dict]) -> dict[str, float]:
    """Mean over seeds of each ratio of the LSTM, and the mean training seconds."""
    return {**mean_ratios([run["lstm"] for run in runs]),
            "train_seconds": round(float(np.mean([run["train_seconds"] for run in runs])), 1)}


def markdown(report: dict) -> str:
    lines = [f"# Validation sweep ({report['date']}, {report['machine']})", "",
             f"Validation span {report['span']}; RMSE as a share of persistence's (lower is better), mean over seeds "
             f"{', '.join(map(str, report['seeds']))}. The test year is not read.", "",
             "| candidate | 1 h | 6 h | 24 h | mean over horizons | worst RMSE / gbm's | train s |",
             "|---|---|---|---|---|---|---|"]
    for name in (name for name in CANDIDATES if name in report["summary"]):
        row = report["summary"][name]
        lines.append(f"| {name} | {row['h1']:.4f} | {row['h6']:.4f} | {row['h24']:.4f} | {row['mean']:.4f} | "
                     f"{row['worst_vs_gbm']:.4f} | {row['train_seconds']} |")
    gbm = report["gbm"]
    lines += [f"| gbm (baseline) | {gbm['h1']:.4f} | {gbm['h6']:.4f} | {gbm['h24']:.4f} | "
              f"{gbm['mean']:.4f} (reported horizons) | | |", "",
              "worst RMSE / gbm's: the LSTM's largest RMSE ratio to gbm over the reported horizons (1, 3, 6, 12, 24 h).", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=os.environ.get("PM25_SOURCE", Settings().source))
    parser.add_argument("--candidates", nargs="+", choices=list(CANDIDATES), default=list(CANDIDATES))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument("--add", action="store_true",
                        help="keep the other candidates' rows of an earlier sweep with the same seeds")
    arguments = parser.parse_args()

    earlier_path = OUTPUT_DIR / "sweep.json"
    earlier = storage.read_json(earlier_path) if arguments.add and earlier_path.exists() else {}
    if earlier and earlier["seeds"] != arguments.seeds:
        parser.error(f"--add needs the earlier sweep's seeds, {earlier['seeds']}")
    runs: dict[str, list[dict]] = {name: seed_runs for name, seed_runs in earlier.get("runs", {}).items()
                                   if name in CANDIDATES and name not in arguments.candidates}
    work = Path(tempfile.mkdtemp(prefix="pm25-sweep-"))
    create_prefect_database(work / "prefect")
    with running_server(work / "prefect") as api_url:
        for name in arguments.candidates:
            for seed in arguments.seeds:
                run = pm25_run(work / "home", arguments.source, work / "prefect", *CANDIDATES[name], "--seed", str(seed),
                               api_url=api_url)
                training = storage.read_json(Path(run["model"]).parent / "training.json")
                runs.setdefault(name, []).append({"seed": seed, **validation_ratios(run),
                                                  "train_seconds": round(training["seconds"], 1),
                                                  "epochs": training["epochs_run"]})
                print(name, runs[name][-1], flush=True)
    metrics = storage.read_json(Path(run["run_dir"]) / "metrics.json")["validation"]
    report = {"date": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} CPU cores, no GPU",
              "span": f"{metrics['start'][:10]} to {metrics['end'][:10]}", "seeds": arguments.seeds,
              "candidates": {name: CANDIDATES[name] for name in runs}, "runs": runs,
              "summary": {name: summarise(seed_runs) for name, seed_runs in runs.items()},
              "gbm": mean_ratios([entry["gbm"] for seed_runs in runs.values() for entry in seed_runs])}
    write_outputs(OUTPUT_DIR, "sweep", report, markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
