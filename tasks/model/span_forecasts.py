"""Span forecasts: every model's forecasts of one station on the validation and test spans, from the same origins,
as one long table per span (origin, horizon, target time, the observation, and a column per model) for the
scoring stage to score: the network LSTM (`lstm`), the weather model's tracks (`lstm_wx_perfect`, `lstm_wx_noisy`,
and `lstm_wx` where weather forecasts are given), the station's own LSTM (`lstm_station`), `gbm`, `ridge` and the
naive baselines. Tables kept from before a model joined are made again.

`lstm_wx` is the weather model fed the forecasts as issued where they hold every target hour of an origin, and the
network LSTM elsewhere (what the nightly process issues when its feed has a gap); `lstm_wx_issued` says which."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.core import storage
from tasks.core.home import SCORED_SPANS, observed_weather_path, span_forecasts_path
from tasks.core.hours import REPORTED_HORIZONS
from tasks.core.states import finish
from tasks.core.weather import ISSUED_IN_FULL, ISSUED_TRACK, NOISY_TRACK, PERFECT_TRACK
from tasks.model.baselines import climatology, fit_climatology, persistence, seasonal_naive
from tasks.model.gbm import fit_predict_gbm
from tasks.model.inputs import PM25_INPUT
from tasks.model.network_inputs import NetworkSpec, load_station_params, station_window_set
from tasks.model.predict import NETWORK_LSTM, model_forecasts, track_forecasts
from tasks.model.ridge import fit_predict_ridge
from tasks.model.weather_ahead import WeatherSources
from tasks.model.windows import WindowPlan, WindowSet, make_window_set, observed_targets, to_micrograms

# The station's own LSTM's forecast column (the network's is `predict.NETWORK_LSTM`), and the baselines beside them.
STATION_LSTM = "lstm_station"
BASELINE_COLUMNS = ("gbm", "ridge", "persistence", "seasonal_naive", "climatology")


@dataclass(frozen=True)
class SpanModels:
    """The models whose forecasts a station's span tables hold: the LSTMs by column (the network's first), the
    network model's weather model if any, and the stored weather forecasts (one table, `tasks/data/weather.py`) it is
    fed as issued, if any."""

    lstm_dirs: dict[str, Path]
    weather_dir: Path | None = None
    issued_weather: Path | None = None

    @property
    def columns(self) -> set[str]:
        tracks = (PERFECT_TRACK, NOISY_TRACK, *((ISSUED_TRACK, ISSUED_IN_FULL) if self.issued_weather else ()))
        return {*self.lstm_dirs, *BASELINE_COLUMNS, *(tracks if self.weather_dir else ())}

log = logging.getLogger(__name__)


def forecast_spans(features: dict[str, pd.DataFrame], station: str, plan: WindowPlan, models: SpanModels,
                   weather: WeatherSources) -> dict[str, tuple[WindowSet, dict[str, np.ndarray]]]:
    """One station's validation and test windows, each with every model's forecasts (µg/m³): the LSTMs (by column
    name; the network's first), the weather model's tracks and the baselines."""
    lstm_dirs, seed = models.lstm_dirs, weather.seed
    own = features[station]
    series = own["target"].to_numpy(dtype="float64")
    params = load_station_params(lstm_dirs[NETWORK_LSTM])[station]
    train = make_window_set(own, plan, "train")
    spans = {name: make_window_set(own, plan, name) for name in SCORED_SPANS}
    spec = NetworkSpec.load(lstm_dirs[NETWORK_LSTM])  # ridge reads the neighbours where there are neighbours
    with_network = {name: station_window_set(features, spec, plan, name, station) for name in ("train", *SCORED_SPANS)}
    by_dir: dict[Path, dict[str, np.ndarray]] = {}
    for model_dir in lstm_dirs.values():
        if model_dir not in by_dir:
            by_dir[model_dir] = model_forecasts(model_dir, features, plan, station, SCORED_SPANS)
    gbm_horizons = tuple(h for h in REPORTED_HORIZONS if h <= plan.horizon)
    pm25_column = plan.feature_columns.index(PM25_INPUT)
    gbm = fit_predict_gbm(train, spans["validation"], list(spans.values()), pm25_column, gbm_horizons, seed)
    ridge = fit_predict_ridge(with_network["train"], with_network["validation"],
                              [with_network[name] for name in spans], own[PM25_INPUT].to_numpy(), pm25_column)
    table = fit_climatology(own["timestamp"], series, (own["split"] == "train").to_numpy())
    result = {}
    for (name, windows), gbm_change, ridge_change in zip(spans.items(), gbm, ridge):
        origins = windows.origin_index
        result[name] = windows, {
            **{column: by_dir[model_dir][name] for column, model_dir in lstm_dirs.items()},
            "gbm": to_micrograms(windows, gbm_change, params),
            "ridge": to_micrograms(windows, ridge_change, params),
            "persistence": persistence(series, origins, plan.horizon),
            "seasonal_naive": seasonal_naive(series, origins, plan.horizon),
            "climatology": climatology(table, own["timestamp"], origins, plan.horizon),
        }
        if models.weather_dir is not None:
            result[name][1].update(weather_tracks(models.weather_dir, features, station, name, weather,
                                                  result[name][1][NETWORK_LSTM]))
    return result


def weather_tracks(weather_dir: Path, features: dict[str, pd.DataFrame], station: str, span: str,
                   weather: WeatherSources, network_lstm: np.ndarray) -> dict[str, np.ndarray]:
    """The weather model's forecast columns of a span: perfect, noisy, and as issued where forecasts are given (the
    network LSTM's forecast at origins without a forecast of every target hour)."""
    tracks = (PERFECT_TRACK, NOISY_TRACK, *((ISSUED_TRACK,) if weather.issued is not None else ()))
    forecasts = track_forecasts(weather_dir, features, station, span, tracks, weather)
    columns = dict(forecasts.by_track)
    if forecasts.issued_in_full is not None:
        in_full = forecasts.issued_in_full[:, None]
        columns[ISSUED_TRACK] = np.where(in_full, columns[ISSUED_TRACK], network_lstm)
        columns[ISSUED_IN_FULL] = np.broadcast_to(in_full, network_lstm.shape)
    return columns


def forecast_table(features: pd.DataFrame, windows: WindowSet, observed: np.ndarray,
                   forecasts: dict[str, np.ndarray]) -> pd.DataFrame:
    """Long table: one row per (origin, horizon) with the observation, whether the origin's reading was observed,
    and every model's forecast."""
    n, horizon = observed.shape
    steps = np.tile(np.arange(1, horizon + 1), n)
    origin_rows = np.repeat(windows.origin_index, horizon)
    origin_time = features["timestamp"].iloc[origin_rows].reset_index(drop=True)
    frame = pd.DataFrame({
        "origin": origin_time,
        "horizon": steps,
        "target_time": origin_time + pd.to_timedelta(steps, unit="h"),
        "observed": observed.ravel(),
        "origin_observed": np.isfinite(features["target"].to_numpy(dtype="float64")[origin_rows]),
    })
    for name, values in forecasts.items():
        frame[name] = values.ravel()
    return frame


def span_bounds(features: pd.DataFrame, span: str) -> dict[str, str]:
    stamps = features["timestamp"][(features["split"] == span).to_numpy()]
    return {"span_start": stamps.iloc[0].isoformat(), "span_end": stamps.iloc[-1].isoformat()}


def write_span_forecasts(station: str, feature_paths: dict[str, Path], plan_path: Path, models: SpanModels,
                         output_dir: Path, seed: int) -> tuple[Path, bool]:
    """Write the station's span forecasts into `output_dir` (the test span's last: its presence marks them
    complete); the same models, weather forecasts and features, the same folder, so an existing one is reused.
    Returns the folder and whether it was reused."""
    key = storage.fingerprint(sorted(models.columns), models.issued_weather and storage.sha256_file(models.issued_weather))
    if all(span_forecasts_path(output_dir, span).exists() and storage.read_parquet_metadata(
            span_forecasts_path(output_dir, span)).get("models") == key for span in SCORED_SPANS):
        log.info("span forecasts cache hit: %s already holds station %s's forecasts", output_dir, station)
        return output_dir, True
    features = {name: pd.read_parquet(path) for name, path in feature_paths.items()}
    plan = WindowPlan.from_json(storage.read_json(plan_path))
    issued = None if models.issued_weather is None else pd.read_parquet(models.issued_weather)
    weather = WeatherSources({name: pd.read_parquet(observed_weather_path(path)) for name, path in feature_paths.items()},
                             seed, issued)
    own = features[station]
    series = own["target"].to_numpy(dtype="float64")
    for span, (windows, forecasts) in forecast_spans(features, station, plan, models, weather).items():
        table = forecast_table(own, windows, observed_targets(series, windows), forecasts)
        storage.write_parquet(span_forecasts_path(output_dir, span), table.assign(station=station),
                              {**span_bounds(own, span), "models": key})
    return output_dir, False


@task(cache_policy=NO_CACHE, name="span-forecasts", task_run_name="forecast the spans of {station}")
def span_forecasts_task(station: str, feature_paths: dict[str, Path], plan_path: Path, models: SpanModels,
                        output_dir: Path, seed: int) -> Path:
    folder, reused = write_span_forecasts(station, feature_paths, plan_path, models, output_dir, seed)
    return finish(folder, reused, "span-forecasts")
