"""What limits the network model's longer horizons: three measurements on a home where `pm25 run` ran on station files.

    .venv/bin/python benchmarks/network_limits.py --home PM25_HOME

- `epochs`: the default network model trained without early stopping (`--epochs`, 12 by default), its averaged
  weights kept after every epoch and each scored on the validation span: would another epoch, chosen per horizon,
  do better than the one early stopping keeps?
- `training days`: the default model trained on the newest 365, 548 and 730 days of the training span and on all of
  it: how much do more training years buy?
- `blends`: the run's kept forecasts (its evaluation folders, validation and test): per
  horizon, `lstm` plus a least-squares mix of its differences to `gbm`, `climatology` and `persistence`, fitted on
  the validation span; scored there (in sample, so optimistic) and on the test span (nothing is chosen by it).

Every score is RMSE pooled over the stations as a share of persistence's (`network_sweep.validation_ratios` for
the trainings), at the sweep's horizons. A home of one station (the embassy file) works too. Writes
reports/bench/network_limits.json and .md under the home.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from benchmarks.benchmark import write_outputs  # noqa: E402
from benchmarks.interval_methods import kept_predictions  # noqa: E402
from benchmarks.network_sweep import HORIZONS, network_inputs, validation_ratios  # noqa: E402
from tasks.core import storage  # noqa: E402
from tasks.core.home import MODEL_FILE  # noqa: E402
from tasks.core.settings import Settings  # noqa: E402
from tasks.model.train import DEFAULT_RECIPE, build_model, train_model  # noqa: E402
from tasks.operate.registry import champion  # noqa: E402

TRAINING_DAYS = (365, 548, 730)  # and the whole training span; a length within a week of it is left out
BLENDS = (("gbm",), ("gbm", "climatology"), ("gbm", "climatology", "persistence"))


def ratios_by_epoch(home: Path, work: Path, epochs: int) -> list[dict]:
    """Validation ratios of the default model's averaged weights after each of `epochs` epochs (no early stop)."""
    import keras

    snapshots = work / "epochs"
    shutil.rmtree(snapshots, ignore_errors=True)
    forecasters = []

    class KeepEachEpoch(keras.callbacks.Callback):
        """Runs after SwapEMAWeights has swapped the averaged weights in: saves what validation just scored."""

        def on_epoch_end(self, epoch, logs=None):
            forecasters[0].save(str(snapshots / f"epoch-{epoch + 1}.keras"))

    def keeping_build(*args):
        training, forecasting = build_model(*args)
        forecasters.append(forecasting)
        return training, forecasting

    def without_stopping(patience: int, weight_averaging: float) -> list:
        swap = [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if weight_averaging else []
        return [*swap, KeepEachEpoch()]

    inputs = network_inputs(home)
    snapshots.mkdir(parents=True)
    model_dir = snapshots / "model"
    trained = train_model(inputs, model_dir, Settings(max_epochs=epochs).training,
                          recipe=replace(DEFAULT_RECIPE, build=keeping_build, callbacks=without_stopping))
    rows = []
    for epoch in range(1, trained.epochs_run + 1):
        shutil.copyfile(snapshots / f"epoch-{epoch}.keras", model_dir / MODEL_FILE)
        rows.append({"epoch": epoch, **validation_ratios(model_dir, inputs.feature_paths)})
        print("epoch", rows[-1], flush=True)
    return rows


def ratios_by_training_days(home: Path, work: Path) -> list[dict]:
    """Validation ratios of the default model trained on the newest days of the training span (early stopping on)."""
    inputs = network_inputs(home)
    plan = storage.read_json(inputs.plan_path)
    first, stop = plan["origins"]["train"]
    rows = []
    for days in [days for days in TRAINING_DAYS if stop - days * 24 > first + 7 * 24] + [None]:
        start = first if days is None else stop - days * 24
        folder = work / f"training-days-{days or 'all'}"
        shorter = storage.write_json(folder / "plan.json", {**plan, "origins": {**plan["origins"], "train": [start, stop]}})
        trained = train_model(replace(inputs, plan_path=shorter), folder / "model", Settings().training)
        rows.append({"days": round((stop - start) / 24), **validation_ratios(folder / "model", inputs.feature_paths),
                     "best_epoch": trained.best_epoch})
        print("training days", rows[-1], flush=True)
    return rows


def blend_ratios(validation: pd.DataFrame, test: pd.DataFrame, horizon: int, others: tuple[str, ...]) -> dict:
    """`lstm` plus the least-squares mix of (other − lstm) fitted on validation, as shares of persistence's RMSE."""
    fit, scored = (frame[frame["horizon"] == horizon] for frame in (validation, test))
    differences = lambda frame: np.column_stack([frame[name] - frame["lstm"] for name in others]  # noqa: E731
                                                 ) if others else np.zeros((len(frame), 0))
    weights = (np.linalg.lstsq(differences(fit), (fit["observed"] - fit["lstm"]).to_numpy(), rcond=None)[0]
               if others else np.zeros(0))
    rmse = lambda frame, forecast: np.sqrt(np.mean((forecast - frame["observed"]) ** 2))  # noqa: E731
    share = lambda frame, forecast: round(float(rmse(frame, forecast) / rmse(frame, frame["persistence"])), 4)  # noqa: E731
    return {"weights": [round(float(w), 3) for w in weights],
            "validation": share(fit, fit["lstm"] + differences(fit) @ weights),
            "test": share(scored, scored["lstm"] + differences(scored) @ weights)}


def blends(home: Path) -> dict:
    model_dir = home / "models" / champion(home / "models").model_dir
    validation, test = (kept[kept["scored"]] for kept in (kept_predictions(model_dir, "validation"),
                                                           kept_predictions(model_dir, "test")))
    return {" + ".join(("lstm", *others)): {f"h{h}": blend_ratios(validation, test, h, others) for h in HORIZONS}
            for others in ((), *BLENDS)}


def markdown(report: dict) -> str:
    lines = [f"# What limits the network model's longer horizons ({report['date']}, {report['machine']})", "",
             f"Seed {report['seed']}; RMSE pooled over {len(report['stations'])} stations as a share of persistence's.",
             "", "## Validation ratios after each epoch (no early stopping)", "", "| epoch | 1 h | 6 h | 24 h |",
             "|---|---|---|---|"]
    lines += [f"| {row['epoch']} | {row['h1']:.4f} | {row['h6']:.4f} | {row['h24']:.4f} |" for row in report["epochs"]]
    lines += ["", "## Validation ratios by days of training", "", "| training days | 1 h | 6 h | 24 h | best epoch |",
              "|---|---|---|---|---|"]
    lines += [f"| {row['days']} | {row['h1']:.4f} | {row['h6']:.4f} | {row['h24']:.4f} | {row['best_epoch']} |"
              for row in report["training_days"]]
    lines += ["", "## Blends fitted on the validation span (validation in sample / test)", "",
              "| forecast | " + " | ".join(f"{h} h" for h in HORIZONS) + " |", "|---|" + "---|" * len(HORIZONS)]
    for name, row in report["blends"].items():
        lines.append(f"| {name} | " + " | ".join(f"{row[f'h{h}']['validation']:.4f} / {row[f'h{h}']['test']:.4f}"
                                                 for h in HORIZONS) + " |")
    return "\n".join([*lines, ""])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True, type=Path, help="a PM25_HOME where `pm25 run` ran on station files")
    parser.add_argument("--epochs", type=int, default=12, help="epochs of the training without early stopping")
    arguments = parser.parse_args()
    work = arguments.home / "network_limits" / f"seed-{Settings().seed}"
    work.mkdir(parents=True, exist_ok=True)
    report = {"date": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} CPU cores, no GPU",
              "seed": Settings().seed, "stations": list(network_inputs(arguments.home).feature_paths),
              "epochs": ratios_by_epoch(arguments.home, work, arguments.epochs),
              "training_days": ratios_by_training_days(arguments.home, work),
              "blends": blends(arguments.home)}
    write_outputs(arguments.home / "reports" / "bench", "network_limits", report, markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
