"""Predict: a saved model's forecasts (µg/m³) from the hours it reads, for every use of a trained model: the spans a
run is scored on, the span its intervals are calibrated on, the newest span a promotion is decided on, a backtest's
nights and the next hours; and the weather model's forecasts fed each way (its tracks).

A saved model folder is self-contained (model.keras, network.json, preprocessing/<station>.json, windows.json,
training.json), so its inputs are rebuilt from the validated dataset with the parameters fitted when it was trained.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.core import storage
from tasks.core.errors import RegistryError
from tasks.core.calibration import read_intervals
from tasks.core.home import (
    NEXT_HOURS_DIR,
    PREPROCESSING_DIR,
    WINDOWS_FILE,
    next_hours_files,
    observed_weather_path,
    weather_model_dir,
)
from tasks.core.hours import HOURS_PER_DAY
from tasks.core.records import Dataset, SpanForecast
from tasks.core.states import finish
from tasks.core.weather import (
    ISSUED_TRACK,
    ISSUED_WEATHER,
    NOISY_TRACK,
    NOISY_WEATHER,
    PERFECT_TRACK,
    ReplayWeather,
    WeatherFeed,
)
from tasks.model.features import build_features, to_hourly_grid
from tasks.model.inputs import PM25_INPUT, PreprocessingParams
from tasks.model.network_inputs import (
    NetworkSpec,
    load_station_params,
    network_window_sets,
    station_inputs,
    station_window_set,
)
from tasks.model.train import is_trained, load_change_predictor
from tasks.model.weather_ahead import (
    WeatherAhead,
    WeatherSources,
    issued_ahead,
    observed_ahead,
    read_weather_scaling,
    scaled_ahead,
)
from tasks.model.weather_errors import error_stream, noisy_weather
from tasks.model.weather_inputs import observed_weather
from tasks.model.windows import WindowPlan, WindowSet, observed_targets, span_origins, to_micrograms, window_inputs


NETWORK_LSTM = "lstm"  # the network model's forecast column, and its name in a forecast of the next hours

log = logging.getLogger(__name__)


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
    inputs = station_inputs(features, model.spec, model.plan.feature_columns)
    result = {}
    for station in model.spec.stations:
        windows = forecast_windows(features, model, station, rows, inputs[station])
        result[station] = to_micrograms(windows, model.predict_change(windows.inputs), model.params[station])
    return result


def forecast_windows(features: dict[str, pd.DataFrame], model: SavedModel, station: str, rows: np.ndarray,
                     inputs: np.ndarray | None = None) -> WindowSet:
    """A station's samples at the origin `rows`, with the look-back the model reads (no targets: they lie ahead);
    `inputs` are the station's model inputs per hour, when already built."""
    lookback, horizon = model.plan.lookback, model.plan.horizon
    if inputs is None:
        inputs = station_inputs(features, model.spec, model.plan.feature_columns)[station]
    return WindowSet(inputs=window_inputs(inputs, lookback)[rows - lookback + 1],
                     targets=np.full((len(rows), horizon), np.nan, dtype="float32"),
                     last_value=features[station][PM25_INPUT].to_numpy(dtype="float32")[rows], origin_index=rows)


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


def weather_decisions(model_dir: Path, features: dict[str, pd.DataFrame], feed: WeatherFeed | None,
                      horizon: int) -> dict[str, tuple[WeatherAhead | None, np.ndarray | None, str | None]]:
    """Per station, whether its forecast of the next hours is the weather model's: the weather it reads ahead and the
    issue behind each hour, or why not (the feed failed, no weather model beside the champion, no forecast for the
    station, a newest issue older than the feed's maximum age at the origin, or issues that do not hold every hour
    ahead); with no feed set, neither."""
    weather_dir = weather_model_dir(model_dir)
    decisions = {}
    table = None if feed is None or feed.table_path is None else pd.read_parquet(feed.table_path)
    for station, own in features.items():
        origin = own["timestamp"].iloc[-1]
        reason = None
        if feed is None:  # no weather set: the model's own forecast, as always
            decisions[station] = (None, None, None)
            continue
        if feed.failure is not None:
            reason = f"the weather feed failed: {feed.failure}"
        elif not is_trained(weather_dir) or read_intervals(weather_dir) is None:
            reason = f"model {model_dir.name} has no calibrated weather model ({weather_dir.name})"
        elif table is None or not (table["station"] == station).any():
            reason = f"the weather forecasts hold no rows for station {station}"
        if reason is not None:
            decisions[station] = (None, None, reason)
            continue
        rows = table[table["station"] == station]
        ahead, issued = issued_ahead(rows, pd.Series([origin]), horizon)
        known = rows.loc[rows["issued_at"] <= origin, "issued_at"]
        age = (origin - known.max()) / pd.Timedelta(hours=1) if len(known) else None
        if age is not None and age > feed.max_age_hours:
            decisions[station] = (None, None, f"the newest weather forecast for station {station} was issued "
                                              f"{age:.1f} h before the origin, more than {feed.max_age_hours:g} h")
        elif age is None or pd.isna(issued).any():
            decisions[station] = (None, None, f"no weather forecast issued by {origin.isoformat()} holds every one of "
                                              f"the next {horizon} hours at station {station}")
        else:
            decisions[station] = (ahead, issued[0], None)
    return decisions


def next_hours_forecast(dataset_path: Path, model_dir: Path, history_hours: int,
                        feed: WeatherFeed | None = None) -> tuple[Path, bool]:
    """The model's forecast of the hours after the newest validated hour at every station, beside the last
    `history_hours` of each station's readings, in the model's next_hours/<key>/ folder; the same model on the same
    data (and weather forecasts) gives the same forecast, so an existing one is reused. Returns the folder and whether
    it was.

    Where `feed` holds a fresh weather forecast of every hour ahead at a station, that station's forecast is the
    model's weather model's (`lstm_wx`, each hour naming the issue it read); elsewhere it is the model's own (`lstm`),
    with the reason kept in the forecast's `fallback` column and logged as a warning."""
    dataset = Dataset.load(dataset_path)
    folder = model_dir / NEXT_HOURS_DIR / (dataset.key if feed is None else storage.fingerprint(dataset.key, feed.key))
    forecast_path, history_path = next_hours_files(folder)
    if forecast_path.exists() and history_path.exists():
        return folder, True
    model = load_saved_model(model_dir)
    features = model_features(dataset, model)
    horizon = model.plan.horizon
    last_row = np.array([len(next(iter(features.values()))) - 1])
    forecasts = forecasts_at(features, model, last_row)
    decisions = weather_decisions(model_dir, features, feed, horizon)
    weather_model = None
    frames, histories = [], []
    for station in model.spec.stations:
        own = features[station]
        origin = own["timestamp"].iloc[-1]
        ahead, issued, reason = decisions[station]
        forecast, model_name = forecasts[station][0], NETWORK_LSTM
        if ahead is not None:
            weather_model = weather_model or load_saved_model(weather_model_dir(model_dir))
            scaling = read_weather_scaling(weather_model.model_dir)[station]
            windows = forecast_windows(features, weather_model, station, last_row)
            change = weather_model.predict_change((windows.inputs, scaled_ahead(ahead, scaling)))
            forecast, model_name = to_micrograms(windows, change, weather_model.params[station])[0], ISSUED_TRACK
        elif reason is not None:
            log.warning("forecast of station %s by %s, not %s: %s", station, NETWORK_LSTM, ISSUED_TRACK, reason)
        frames.append(pd.DataFrame({
            "station": station,
            "origin": origin,
            "origin_observed": bool(np.isfinite(own["target"].iloc[-1])),
            "target_time": origin + pd.to_timedelta(np.arange(1, horizon + 1), unit="h"),
            "horizon_hours": np.arange(1, horizon + 1),
            "pm25": forecast.astype("float64"),
            "model": model_name,
            "weather_issued_at": pd.to_datetime(issued if issued is not None else [pd.NaT] * horizon, utc=True),
            "fallback": reason or "",
        }))
        histories.append(own[["timestamp", "target"]].iloc[-history_hours:].assign(station=station))
    storage.write_parquet(history_path, pd.concat(histories, ignore_index=True))
    storage.write_parquet(forecast_path, pd.concat(frames, ignore_index=True), {"dataset": dataset.key})  # last
    return folder, False


@task(cache_policy=NO_CACHE, name="next-hours", task_run_name="forecast the next hours with {model_dir.name}")
def next_hours_task(dataset_path: Path, model_dir: Path, history_hours: int, feed: WeatherFeed | None = None) -> Path:
    folder, reused = next_hours_forecast(dataset_path, model_dir, history_hours, feed)
    return finish(folder, reused, "next-hours")


@dataclass(frozen=True)
class TrackForecasts:
    """One station's weather-model forecasts of one span (µg/m³, origins × horizon) by track, beside the observed
    targets; for the issued track, which origins had a forecast of every target hour (the others have none: NaN)."""

    observed: np.ndarray
    by_track: dict[str, np.ndarray]
    issued_in_full: np.ndarray | None = None


def track_forecasts(model_dir: Path, features: dict[str, pd.DataFrame], station: str, span: str,
                    tracks: Sequence[str], weather: WeatherSources) -> TrackForecasts:
    """The weather model's forecasts of `station`'s `span` samples, fed the weather of each track: the weather
    observed at the target hours, that weather with errors drawn from the run's seed, or the forecasts as issued."""
    spec = NetworkSpec.load(model_dir)
    plan = WindowPlan.from_json(storage.read_json(model_dir / WINDOWS_FILE))
    params = load_station_params(model_dir)[station]
    scaling = read_weather_scaling(model_dir)[station]
    predict = load_change_predictor(model_dir)
    windows = station_window_set(features, spec, plan, span, station)
    perfect = observed_ahead(weather.observed[station], windows.origin_index, plan.horizon)

    def forecast(ahead: Mapping[str, np.ndarray]) -> np.ndarray:
        return to_micrograms(windows, predict((windows.inputs, scaled_ahead(ahead, scaling))), params)

    result, in_full = {}, None
    for track in tracks:
        if track == PERFECT_TRACK:
            result[track] = forecast(perfect)
        elif track == NOISY_TRACK:
            result[track] = forecast(noisy_weather(perfect, error_stream(weather.seed, station, span)))
        elif track == ISSUED_TRACK and weather.issued is not None:
            origin_times = features[station]["timestamp"].iloc[windows.origin_index].reset_index(drop=True)
            ahead, issue_times = issued_ahead(weather.issued[weather.issued["station"] == station], origin_times,
                                              plan.horizon)
            in_full = ~pd.isna(issue_times).any(axis=1)
            result[track] = np.where(in_full[:, None], forecast(ahead), np.nan)
    series = features[station]["target"].to_numpy(dtype="float64")
    return TrackForecasts(observed_targets(series, windows), result, in_full)


def weather_validation_forecasts(feature_paths: dict[str, Path], model_dir: Path,
                                 seed: int) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Per track fed from the station files (perfect, noisy), per station: the validation span's observed targets
    and the weather model's forecasts, what the track's intervals and category maps are calibrated on."""
    features = {station: pd.read_parquet(path) for station, path in feature_paths.items()}
    weather = WeatherSources({station: pd.read_parquet(observed_weather_path(path))
                              for station, path in feature_paths.items()}, seed)
    result: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {PERFECT_TRACK: {}, NOISY_TRACK: {}}
    for station in NetworkSpec.load(model_dir).stations:
        forecasts = track_forecasts(model_dir, features, station, "validation", tuple(result), weather)
        for track, forecast in forecasts.by_track.items():
            result[track][station] = (forecasts.observed, forecast)
    return result


def replay_weather_forecasts(dataset: Dataset, model_dir: Path, features: dict[str, pd.DataFrame], rows: np.ndarray,
                             weather: ReplayWeather) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A backtest night's weather-model forecasts (µg/m³, origins × horizon) from each origin row, per station, with
    whether each origin had weather of every hour ahead: always from the station files (`perfect`, `noisy`: the
    weather observed after the origin, the labelled upper bound), where the forecasts issued by then hold every hour
    (`issued`)."""
    model = load_saved_model(weather_model_dir(model_dir))
    scaling = read_weather_scaling(model.model_dir)
    horizon = model.plan.horizon
    origins = next(iter(features.values()))["timestamp"].iloc[rows].reset_index(drop=True)
    table = None if weather.table_path is None else pd.read_parquet(weather.table_path)
    result = {}
    for station, params in model.params.items():
        windows = forecast_windows(features, model, station, rows)
        if weather.mode == ISSUED_WEATHER:
            ahead, issued = issued_ahead(table[table["station"] == station], origins, horizon)
            in_full = ~pd.isna(issued).any(axis=1)
        else:
            end = origins.iloc[-1] + pd.Timedelta(hours=horizon)
            grid = to_hourly_grid(dataset.readings(station), params.input_columns, dataset.start, end)
            ahead = observed_ahead(observed_weather(grid.reset_index()), rows, horizon)
            if weather.mode == NOISY_WEATHER:
                ahead = noisy_weather(ahead, error_stream(weather.seed, station, origins.iloc[0].isoformat()))
            in_full = np.ones(len(rows), dtype=bool)
        change = model.predict_change((windows.inputs, scaled_ahead(ahead, scaling[station])))
        result[station] = (to_micrograms(windows, change, params), in_full)
    return result
