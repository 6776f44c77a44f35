"""The noisy track's error model measured on real weather: the errors it draws onto the weather observed at random
origins' target hours, as root-mean-square sizes at 1 and 24 hours ahead, the wind direction's where the wind is above
2 m/s, and the share of hours whose wet or dry it flips.

    .venv/bin/python benchmarks/weather_errors.py --home PM25_HOME   # a home where `pm25 run` ran

Reads every station of the home's newest dataset (observed weather as `tasks.model.weather_inputs.observed_weather`
maps it) and writes reports/bench/weather_errors.json and .md under the project.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from benchmarks.benchmark import OUTPUT_DIR, write_outputs  # noqa: E402
from tasks.core.weather import WEATHER_VARIABLES  # noqa: E402
from tasks.model.weather_errors import DIRECTION_MIN_SPEED, error_stream, noisy_weather  # noqa: E402
from tasks.model.weather_inputs import WET_MM, observed_weather  # noqa: E402

HORIZON, ORIGINS, SEED = 24, 20_000, 42


def measure(home: Path) -> dict:
    dataset = max((home / "data" / "dataset").glob("*/"), key=lambda folder: folder.stat().st_mtime)
    observed = pd.concat([observed_weather(pd.read_parquet(path)) for path in sorted(dataset.glob("station=*/*.parquet"))],
                         ignore_index=True)
    rows = np.random.default_rng(SEED).integers(0, len(observed) - HORIZON - 1, ORIGINS)[:, None] + np.arange(1, HORIZON + 1)
    truth = {name: observed[name].to_numpy()[rows] for name in WEATHER_VARIABLES}
    noisy = noisy_weather(truth, error_stream(SEED, "benchmark"))
    report = {"dataset": dataset.name, "origins": ORIGINS, "mean_wind_speed": float(np.nanmean(truth["wind_speed"]))}
    for name in ("temperature", "dew_point", "pressure", "wind_speed"):
        error = noisy[name] - truth[name]
        report[name] = {f"rmse_h{h}": float(np.sqrt(np.nanmean(error[:, h - 1] ** 2))) for h in (1, 24)}
    turned = (noisy["wind_direction"] - truth["wind_direction"] + 180) % 360 - 180
    windy = truth["wind_speed"] > DIRECTION_MIN_SPEED
    report["wind_direction"] = {f"rmse_h{h}": float(np.sqrt(np.nanmean(turned[:, h - 1][windy[:, h - 1]] ** 2)))
                                for h in (1, 24)}
    known = np.isfinite(truth["precipitation"])
    flipped = (noisy["precipitation"] >= WET_MM) != (truth["precipitation"] >= WET_MM)
    report["wet_or_dry_wrong"] = {f"share_h{h}": float(flipped[:, h - 1][known[:, h - 1]].mean()) for h in (1, 24)}
    return report


def markdown(report: dict) -> str:
    lines = [f"Error model on dataset {report['dataset']} ({report['origins']} origins, mean wind speed "
             f"{report['mean_wind_speed']:.2f} m/s):", "", "| variable | 1 h | 24 h |", "|---|---|---|"]
    for name in ("temperature", "dew_point", "pressure", "wind_speed", "wind_direction"):
        lines.append(f"| {name} RMSE | {report[name]['rmse_h1']:.2f} | {report[name]['rmse_h24']:.2f} |")
    flips = report["wet_or_dry_wrong"]
    lines.append(f"| wet or dry wrong | {flips['share_h1']:.3f} | {flips['share_h24']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    arguments = parser.parse_args()
    report = measure(arguments.home)
    write_outputs(OUTPUT_DIR, f"weather_errors_{report['dataset']}", report, markdown(report))


if __name__ == "__main__":
    main()
