"""How the category of the next 24 hours should be read from the forecast, judged on the validation span only.

    .venv/bin/python benchmarks/category_methods.py --model-dir PM25_HOME/models/<key>   # a model `pm25 run` scored

With the network LSTM's validation forecasts that `pm25 run` kept (`interval_methods.validation_forecasts`),
per station: the category of the plain 24-hour mean forecast, against quantile maps (`tasks.scoring.categories`) fitted on
the validation span's odd months and checked on its even months, and the other way round. A map is fitted on the
origins of every hour, or only on those within 0 or 2 hours of the hour checked. Two other ways to read the
category, fitted on the same origins of every hour, are beside them: the observed category most frequent for each
category of the plain mean, and the median observed mean in each of ten equal-count bins of the mean forecast. Reports category accuracy at the
origins of the forecast hour (`--forecast-at`, 02:00 as the nightly deployment), with persistence's (the reading
at the origin) beside it. Writes reports/bench/category_methods.json under the model's home.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from benchmarks.interval_methods import validation_forecasts  # noqa: E402
from tasks.core import storage  # noqa: E402
from tasks.core.air_quality import category  # noqa: E402
from tasks.core.hours import HOURS_PER_DAY  # noqa: E402
from tasks.scoring.categories import day_means, map_of_means  # noqa: E402

FIT_HOURS = {"every origin hour": None, "the forecast hour ± 2": 2, "the forecast hour only": 0}
LEVEL_BINS = 10


def most_frequent_category(fit: pd.DataFrame, forecast: np.ndarray) -> np.ndarray:
    """The observed category most frequent on the calibration days whose plain mean had the same category."""
    table = pd.crosstab(category(fit["forecast"].to_numpy()), category(fit["observed"].to_numpy()))
    remap = table.idxmax(axis=1)
    return np.array([remap.get(level, level) for level in category(forecast)])


def median_by_level(fit: pd.DataFrame, forecast: np.ndarray) -> np.ndarray:
    """The category of the median observed mean in the bin of the mean forecast (equal-count bins), interpolated
    between the bins' middles."""
    order = np.argsort(fit["forecast"].to_numpy(), kind="stable")
    bins = np.array_split(order, LEVEL_BINS)
    middles = [float(np.median(fit["forecast"].to_numpy()[rows])) for rows in bins]
    medians = [float(np.median(fit["observed"].to_numpy()[rows])) for rows in bins]
    return category(np.interp(forecast, middles, medians))


OTHER_WAYS = {"the most frequent observed category of the plain mean's": most_frequent_category,
              "the median observed mean by level of the forecast": median_by_level}


def station_days(frame: pd.DataFrame) -> pd.DataFrame:
    """One station's validation origins: the hour, the 24-hour mean forecast, the observed mean (NaN where fewer
    than 20 hours were observed) and the reading at the origin."""
    frame = frame[frame["horizon"] <= HOURS_PER_DAY]
    observed = frame.pivot(index="origin", columns="horizon", values="observed")
    forecast = frame.pivot(index="origin", columns="horizon", values="lstm")
    forecast_mean, observed_mean = day_means(observed.to_numpy(), forecast.to_numpy())
    origins = pd.DatetimeIndex(observed.index)
    # the reading at an origin is the observed target of the origin an hour before, at one hour ahead
    reading = observed[1].reindex(origins - pd.Timedelta(hours=1)).to_numpy()
    return pd.DataFrame({"station": frame["station"].iloc[0], "origin": origins, "forecast": forecast_mean,
                         "observed": observed_mean, "persistence": reading})


def hour_distance(hours: pd.Series, hour: int) -> np.ndarray:
    return np.minimum((hours - hour) % 24, (hour - hours) % 24).to_numpy()


def accuracies(days: pd.DataFrame, forecast_hour: int) -> dict[str, float | int]:
    """Category accuracy at the forecast hour's origins, each half of the months checked with a map fitted on the
    other half, per station."""
    days = days[days["observed"].notna() & days["persistence"].notna()]
    odd = (days["origin"].dt.month % 2 == 1).to_numpy()
    distance = hour_distance(days["origin"].dt.hour, forecast_hour)
    hits: dict[str, list[np.ndarray]] = {"persistence": [], "plain mean": [], **{name: [] for name in FIT_HOURS},
                                         **{name: [] for name in OTHER_WAYS}}
    for station in days["station"].unique():
        mine = (days["station"] == station).to_numpy()
        for half in (True, False):
            checked = days[mine & (odd == half) & (distance == 0)]
            truth = category(checked["observed"].to_numpy())
            hits["persistence"].append(category(checked["persistence"].to_numpy()) == truth)
            hits["plain mean"].append(category(checked["forecast"].to_numpy()) == truth)
            for name, within in FIT_HOURS.items():
                fit = days[mine & (odd != half) & (distance <= (24 if within is None else within))]
                day_map = map_of_means(fit["forecast"].to_numpy(), fit["observed"].to_numpy())
                hits[name].append(day_map.categories(checked["forecast"].to_numpy()) == truth)
            every_hour = days[mine & (odd != half)]
            for name, way in OTHER_WAYS.items():
                hits[name].append(way(every_hour, checked["forecast"].to_numpy()) == truth)
    result: dict[str, float | int] = {name: round(float(np.concatenate(values).mean()), 3)
                                      for name, values in hits.items()}
    result["days"] = int(sum(len(values) for values in hits["plain mean"]))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--forecast-at", type=int, default=2, help="the local hour of the origins checked")
    arguments = parser.parse_args()
    predictions = validation_forecasts(arguments.model_dir)
    days = pd.concat([station_days(frame) for _, frame in predictions.groupby("station")], ignore_index=True)
    result = accuracies(days, arguments.forecast_at)
    print(json.dumps(result))
    storage.write_json(arguments.model_dir.parent.parent / "reports" / "bench" / "category_methods.json",
                       {"model_dir": str(arguments.model_dir), "stations": sorted(days["station"].unique()), "forecast_at": arguments.forecast_at,
                        "accuracy": result})


if __name__ == "__main__":
    main()
