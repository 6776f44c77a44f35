"""How many bins by the forecast's level the 80 % intervals should have, judged on the validation span only.

    .venv/bin/python benchmarks/interval_methods.py --model-dir PM25_HOME/models/<key>   # a model `pm25 run` scored

For 1 bin (one offset per lead hour) and more bins (`tasks.scoring.intervals`), fit on the validation span's odd months and
check on its even months, and the other way round, per station and lead hour, with the network LSTM's validation
forecasts that `pm25 run` kept (its evaluation folders). Reports the coverage pooled and in
each fifth of the forecasts by size, the mean width, and the mean interval score (`tasks.scoring.intervals.interval_score`:
width plus 10 times the distance by which the observation falls outside; lower is better). Writes reports/bench/interval_methods.json under the
model's home.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from tasks.core import storage  # noqa: E402
from tasks.scoring.evaluate import SCORES_FILE, station_predictions  # noqa: E402
from tasks.scoring.intervals import INTERVAL_COVERAGE, coverage_by_size, fit_intervals, interval_score  # noqa: E402

BINS = (1, 5, 10, 20)


def kept_predictions(model_dir: Path, span: str, columns: list[str] | None = None) -> pd.DataFrame:
    """Every station's forecasts of `span` and their scores that `pm25 run` kept in the model's evaluation folder,
    one folder per station."""
    frames = {}
    for path in sorted(model_dir.glob(f"evaluation/*/{SCORES_FILE}")):
        frame = station_predictions(path.parent, span, columns)
        frames.setdefault(frame["station"].iloc[0], frame)
    return pd.concat(frames.values(), ignore_index=True)


def validation_forecasts(model_dir: Path) -> pd.DataFrame:
    """The network LSTM's validation forecasts of every station."""
    return kept_predictions(model_dir, "validation", ["station", "origin", "horizon", "observed", "scored", "lstm"])


def cross_fitted(cells: pd.DataFrame, bins: int) -> pd.DataFrame:
    """Each scored cell with the interval fitted on the other half of the months, at its station and lead hour."""
    odd = (cells["origin"].dt.month % 2 == 1).to_numpy()
    checked = []
    for half in (True, False):
        calibration = cells[odd != half].groupby(["station", "horizon"])
        for key, group in cells[odd == half].groupby(["station", "horizon"]):
            fit = calibration.get_group(key)
            table = fit_intervals(fit[["observed"]].to_numpy(), fit[["lstm"]].to_numpy(), INTERVAL_COVERAGE, bins)
            scored = group[group["scored"]]
            lower, upper = table.bounds(scored[["lstm"]].to_numpy())
            checked.append(scored.assign(lower=lower[:, 0], upper=upper[:, 0]))
    return pd.concat(checked, ignore_index=True)


def summary(cells: pd.DataFrame) -> dict:
    observed, lower, upper = (cells[name].to_numpy() for name in ("observed", "lower", "upper"))
    inside = (observed >= lower) & (observed <= upper)
    return {"coverage_80": round(float(inside.mean()), 3),
            "coverage_by_fifth": [round(group["coverage_80"], 3) for group in coverage_by_size(cells["lstm"], inside)],
            "mean_width": round(float((upper - lower).mean()), 1),
            "interval_score": round(float(interval_score(observed, lower, upper, INTERVAL_COVERAGE).mean()), 1),
            "cells": int(len(cells))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    model_dir = parser.parse_args().model_dir
    cells = validation_forecasts(model_dir)
    rows = {str(bins): summary(cross_fitted(cells, bins)) for bins in BINS}
    for bins, row in rows.items():
        print(f"{bins:>3} bin(s): {json.dumps(row)}")
    storage.write_json(model_dir.parent.parent / "reports" / "bench" / "interval_methods.json",
                       {"model_dir": str(model_dir), "stations": sorted(cells["station"].unique()), "rows": rows})


if __name__ == "__main__":
    main()
