"""Predict: a saved model's forecasts (µg/m³) from the hours it reads, for every use of a trained model: the spans a
run is scored on, the span its intervals are calibrated on, the newest span a promotion is decided on, a backtest's
nights and the next hours.

A saved model folder is self-contained (model.keras, network.json, preprocessing/<station>.json, windows.json,
training.json), so its inputs are rebuilt from the validated dataset with the parameters fitted when it was trained.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.core import storage
from tasks.core.errors import RegistryError
from tasks.core.home import NEXT_HOURS_DIR, PREPROCESSING_DIR, WINDOWS_FILE, next_hours_files
from tasks.core.hours import HOURS_PER_DAY
from tasks.core.records import Dataset, SpanForecast
from tasks.core.states import finish
from tasks.model.features import build_features, to_hourly_grid
from tasks.model.inputs import PM25_INPUT, PreprocessingParams
from tasks.model.network_inputs import (
    NetworkSpec,
    load_station_params,
    network_window_sets,
    station_inputs,
    station_window_set,
)
from tasks.model.train import load_change_predictor
from tasks.model.windows import WindowPlan, WindowSet, observed_targets, span_origins, to_micrograms, window_inputs


@dataclass(frozen=True)
class SavedModel:
    """A trained model ready to forecast: its stations, each one's fitted preprocessing, window shape and change
    predictor."""

    model_dir: Path
    spec: NetworkSpec
    params: dict[str, PreprocessingParams]
    plan: WindowPlan
    predict_change: Callable[[np.ndarray], np.ndarray]


def load_saved_model(model_dir: Path) -> SavedModel:
    return SavedModel(model_dir, NetworkSpec.load(model_dir), load_station_params(model_dir),
                      WindowPlan.from_json(storage.read_json(model_dir / WINDOWS_FILE)),
                      load_change_predictor(model_dir))


def model_features(dataset: Dataset, model: SavedModel, through: pd.Timestamp | None = None) -> dict[str, pd.DataFrame]:
    """Each station's hourly grid over the dataset's hours (or up to the hour `through`, reading nothing recorded
    after it), turned into inputs with the model's fitted parameters."""
    missing = [station for station in model.spec.stations if station not in dataset.stations]
    if missing:
        raise RegistryError(f"model {model.model_dir.name} forecasts station(s) {missing}, which the validated data "
                            f"({dataset.path}) lack; retrain on these data first")
    until = None if through is None else through + pd.Timedelta(hours=1)
    end = dataset.end if through is None else through
    return {station: build_features(to_hourly_grid(dataset.readings(station, until), params.input_columns,
                                                   dataset.start, end), params)
            for station, params in model.params.items()}


def span_forecast(features: dict[str, pd.DataFrame], model: SavedModel, span_start: int) -> SpanForecast:
    """Per station: origin rows, observed targets, forecasts (µg/m³) and origin-observed flags for every origin
    whose targets meet the rows from `span_start` on; target hours before the span are masked."""
    hours = len(next(iter(features.values())))
    split = np.where(np.arange(hours) >= span_start, "span", "before")
    plan = WindowPlan(model.plan.lookback, model.plan.horizon, model.plan.feature_columns,
                      {"span": span_origins(split, "span", model.plan.lookback, model.plan.horizon)})
    marked = {station: frame.assign(split=split) for station, frame in features.items()}
    result = {}
    for station, windows in network_window_sets(marked, model.spec, plan, "span").items():
        series = features[station]["target"].to_numpy(dtype="float64")
        forecast = to_micrograms(windows, model.predict_change(windows.inputs), model.params[station])
        result[station] = (windows.origin_index, observed_targets(series, windows), forecast,
                           np.isfinite(series[windows.origin_index]))
    return result


def forecasts_at(features: dict[str, pd.DataFrame], model: SavedModel, rows: np.ndarray) -> dict[str, np.ndarray]:
    """Every station's forecast (µg/m³, origins × horizons) from each origin row: the model reads the look-back
    hours up to the origin and nothing after it."""
    lookback, horizon = model.plan.lookback, model.plan.horizon
    inputs = station_inputs(features, model.spec, model.plan.feature_columns)
    result = {}
    for station in model.spec.stations:
        windows = WindowSet(inputs=window_inputs(inputs[station], lookback)[rows - lookback + 1],
                            targets=np.full((len(rows), horizon), np.nan, dtype="float32"),
                            last_value=features[station][PM25_INPUT].to_numpy(dtype="float32")[rows], origin_index=rows)
        result[station] = to_micrograms(windows, model.predict_change(windows.inputs), model.params[station])
    return result


def model_forecasts(model_dir: Path, features: dict[str, pd.DataFrame], plan: WindowPlan, station: str,
                    spans: tuple[str, ...]) -> dict[str, np.ndarray]:
    """A saved model's forecasts (µg/m³) of `station` on each span, with the inputs its network reads."""
    spec = NetworkSpec.load(model_dir)
    params = load_station_params(model_dir)[station]
    predict_change = load_change_predictor(model_dir)
    result = {}
    for span in spans:
        windows = station_window_set(features, spec, plan, span, station)
        result[span] = to_micrograms(windows, predict_change(windows.inputs), params)
    return result


def newest_span_forecast(dataset_path: Path, model_dir: Path, span_days: int,
                         through: pd.Timestamp | None = None) -> SpanForecast:
    """The model's forecasts of every origin whose targets meet the last `span_days` of the data (or of the hours up
    to `through`, reading nothing recorded after it)."""
    model = load_saved_model(model_dir)
    features = model_features(Dataset.load(dataset_path), model, through)
    hours = len(next(iter(features.values())))
    return span_forecast(features, model, hours - span_days * HOURS_PER_DAY)


def validation_forecasts(dataset_path: Path, model_dir: Path, validation_days: int) -> dict[str, tuple[np.ndarray,
                                                                                                  np.ndarray]]:
    """Per station: the observed targets and the model's forecasts of its validation span (the `validation_days`
    up to the last validation hour of the features it was trained on), reading nothing recorded after that hour:
    what its intervals and category maps are calibrated on."""
    station = NetworkSpec.load(model_dir).stations[0]
    splits = storage.read_json(model_dir / PREPROCESSING_DIR / f"{station}.json")["splits"]
    validation = newest_span_forecast(dataset_path, model_dir, validation_days, pd.Timestamp(splits["validation"]["end"]))
    return {station: (observed, forecast) for station, (_, observed, forecast, _) in validation.items()}


def next_hours_forecast(dataset_path: Path, model_dir: Path, history_hours: int) -> tuple[Path, bool]:
    """The model's forecast of the hours after the newest validated hour at every station, beside the last
    `history_hours` of each station's readings, in the model's next_hours/<dataset key>/ folder; the same model on
    the same data gives the same forecast, so an existing one is reused. Returns the folder and whether it was."""
    dataset = Dataset.load(dataset_path)
    folder = model_dir / NEXT_HOURS_DIR / dataset.key
    forecast_path, history_path = next_hours_files(folder)
    if forecast_path.exists() and history_path.exists():
        return folder, True
    model = load_saved_model(model_dir)
    features = model_features(dataset, model)
    horizon = model.plan.horizon
    forecasts = forecasts_at(features, model, np.array([len(next(iter(features.values()))) - 1]))
    frames, histories = [], []
    for station in model.spec.stations:
        own = features[station]
        origin = own["timestamp"].iloc[-1]
        frames.append(pd.DataFrame({
            "station": station,
            "origin": origin,
            "origin_observed": bool(np.isfinite(own["target"].iloc[-1])),
            "target_time": origin + pd.to_timedelta(np.arange(1, horizon + 1), unit="h"),
            "horizon_hours": np.arange(1, horizon + 1),
            "pm25": forecasts[station][0].astype("float64"),
        }))
        histories.append(own[["timestamp", "target"]].iloc[-history_hours:].assign(station=station))
    storage.write_parquet(history_path, pd.concat(histories, ignore_index=True))
    storage.write_parquet(forecast_path, pd.concat(frames, ignore_index=True), {"dataset": dataset.key})  # last
    return folder, False


@task(cache_policy=NO_CACHE, name="next-hours", task_run_name="forecast the next hours with {model_dir.name}")
def next_hours_task(dataset_path: Path, model_dir: Path, history_hours: int) -> Path:
    folder, reused = next_hours_forecast(dataset_path, model_dir, history_hours)
    return finish(folder, reused, "next-hours")
