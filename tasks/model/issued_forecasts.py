"""Issued forecasts: what a backtest's champion of each night would have issued, from each origin it serves, with
its 80 % intervals and the category of the next 24 hours, reading nothing recorded after the origin; fed weather,
its weather model's (`lstm_wx`) where the weather holds every hour ahead, as the nightly process would."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.core import storage
from tasks.core.calibration import maps_key, read_day_maps, read_intervals, tables_key
from tasks.core.home import weather_model_dir
from tasks.core.hours import HOURS_PER_DAY, TIMEZONE
from tasks.core.records import Dataset, Segment
from tasks.core.states import finish
from tasks.core.weather import ISSUED_TRACK, ReplayWeather
from tasks.model.network_inputs import NetworkSpec
from tasks.model.predict import NETWORK_LSTM, forecasts_at, load_saved_model, model_features, replay_weather_forecasts

SEGMENTS_DIR = "backtest_forecasts"


def forecast_segment(dataset_path: Path, model_dir: Path, origins: list[str], version: int,
                     weather: ReplayWeather | None = None) -> Segment:
    """The champion's forecasts from each of `origins` (consecutive nights it serves), with their intervals, the
    category issued for the next 24 hours and persistence, reading nothing recorded after the segment's last origin
    (and each window nothing after its own; fed `perfect` or `noisy` weather, its weather model reads the weather
    observed after the origin, as labelled). Kept in the model's folder, keyed by the origins, the readings up to the
    last one and the weather."""
    dataset = Dataset.load(dataset_path)
    stamps = pd.DatetimeIndex([pd.Timestamp(origin) for origin in origins]).tz_convert(TIMEZONE)
    last = stamps[-1]
    intervals, day_maps = read_intervals(model_dir), read_day_maps(model_dir)
    weather_dir = weather_model_dir(model_dir)
    weather_intervals = read_intervals(weather_dir) if weather is not None else None
    with_weather = weather_intervals is not None
    readings = dataset.content_key(NetworkSpec.load(model_dir).stations, last + pd.Timedelta(hours=1))
    key = storage.fingerprint(origins, readings, tables_key(intervals), maps_key(day_maps),
                              with_weather and (weather.key, dataset.key, tables_key(weather_intervals)))
    path = model_dir / SEGMENTS_DIR / f"{key}.parquet"
    if path.exists():
        return Segment(path, version, len(origins), cache_hit=True)
    model = load_saved_model(model_dir)
    features = model_features(dataset, model, last)
    timestamps = pd.DatetimeIndex(next(iter(features.values()))["timestamp"])
    rows = timestamps.get_indexer(stamps)
    horizon = model.plan.horizon
    leads = np.arange(1, horizon + 1)
    by_weather = replay_weather_forecasts(dataset, model_dir, features, rows, weather) if with_weather else {}
    weather_maps = read_day_maps(weather_dir) if with_weather else {}
    frames = []
    for station, forecast in forecasts_at(features, model, rows).items():
        reading = features[station]["target"].to_numpy(dtype="float64")[rows]
        lower, upper = intervals[station].bounds(forecast)
        day_category = (day_maps[station].issue(forecast) if horizon >= HOURS_PER_DAY
                        else np.full(len(rows), pd.NA))  # no category for a horizon shorter than a day
        used = np.zeros(len(rows), dtype=bool)
        if station in by_weather:
            weather_forecast, used = by_weather[station]
            weather_lower, weather_upper = weather_intervals[station].bounds(weather_forecast)
            forecast = np.where(used[:, None], weather_forecast, forecast)
            lower, upper = np.where(used[:, None], weather_lower, lower), np.where(used[:, None], weather_upper, upper)
            if horizon >= HOURS_PER_DAY:
                day_category = np.where(used, weather_maps[station].issue(weather_forecast), day_category)
        frames.append(pd.DataFrame({
            "station": station,
            "origin": np.repeat(stamps, horizon),
            "target_time": (np.repeat(stamps, horizon) + pd.to_timedelta(np.tile(leads, len(rows)), unit="h")),
            "lead_hours": np.tile(leads, len(rows)),
            "forecast": forecast.ravel(),
            "lower_80": lower.ravel(),
            "upper_80": upper.ravel(),
            "persistence": np.repeat(reading, horizon),
            "category_24h": pd.array(np.repeat(day_category, horizon), dtype="Int8"),
            "model": np.repeat(np.where(used, ISSUED_TRACK, NETWORK_LSTM), horizon),
        }))
    storage.write_parquet(path, pd.concat(frames, ignore_index=True))
    return Segment(path, version, len(origins))


@task(cache_policy=NO_CACHE, name="backtest-forecasts", task_run_name="forecasts of v{version} from {origins[0]}")
def segment_task(dataset_path: Path, model_dir: Path, origins: list[str], version: int,
                 weather: ReplayWeather | None = None) -> Segment:
    segment = forecast_segment(dataset_path, model_dir, origins, version, weather)
    return finish(segment, segment.cache_hit, "backtest-forecasts")
