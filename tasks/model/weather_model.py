"""The weather model, `lstm_wx`: the network LSTM's look-back, plus the weather of each of the hours it forecasts.

It learns by perfect prognosis: in the training and validation spans the weather observed at the target hours (each
station's own readings, `observed_weather.parquet` beside its features) stands in for a forecast of it, so training
needs no archive of old forecasts. Its forecasts are then made three ways, each scored as what it is:

- `lstm_wx_perfect`: fed the weather observed at the target hours. An upper bound (what a perfect weather forecast
  would buy), never a forecast skill.
- `lstm_wx_noisy`: fed that weather with forecast-like errors drawn onto it (`tasks.model.weather_errors`).
- `lstm_wx`: fed a weather forecast as issued: for each target hour the newest issue at or before the origin.

Design (chosen on the validation span, docs/weather.md): the weather inputs of the next hours, flattened, join the
LSTM's last state and the origin hour's inputs; a dense layer of DENSE_UNITS reads them, and the output layer reads
its units beside what it read. The model lives in its network model's folder (`weather-<version>/`), trained on the
same features, window plan and settings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.core import storage
from tasks.core.home import WINDOWS_FILE, observed_weather_path
from tasks.core.settings import TrainingSettings
from tasks.core.weather import ISSUED_TRACK, NOISY_TRACK, PERFECT_TRACK, WEATHER_VARIABLES
from tasks.model.network_inputs import NetworkSpec, load_station_params, network_window_sets, station_window_set
from tasks.model.train import (
    STEPS_PER_EXECUTION,
    ModelRecipe,
    TrainedModel,
    TrainingInputs,
    TrainingSamples,
    horizon_weights,
    load_change_predictor,
    masked_mse,
    train_with_progress,
)
from tasks.model.weather_errors import error_stream, noisy_weather
from tasks.model.weather_inputs import WEATHER_INPUTS, weather_inputs
from tasks.model.windows import WindowPlan, WindowSet, observed_targets, stack_window_sets, to_micrograms

WEATHER_SCALING_FILE = "weather_scaling.json"
DENSE_UNITS = 128

# The weather at each lead hour of each origin: variable name → origins × lead hours (NaN where unknown).
WeatherAhead = dict[str, np.ndarray]


@dataclass(frozen=True)
class WeatherSources:
    """What the weather model can be fed: each station's observed weather (rows aligned with its features), the seed
    of the noisy track's errors, and weather forecasts as issued (the layout's table, UTC), if any."""

    observed: dict[str, pd.DataFrame]
    seed: int
    issued: pd.DataFrame | None = None


def hours_ahead(values: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """values[origin + 1 … origin + horizon] for each origin row (origins × horizon); NaN past the end."""
    padded = np.concatenate([np.asarray(values, dtype="float64"), np.full(horizon, np.nan)])
    return padded[origins[:, None] + np.arange(1, horizon + 1)]


def observed_ahead(observed: pd.DataFrame, origins: np.ndarray, horizon: int) -> WeatherAhead:
    """The weather observed at each origin's target hours (perfect prognosis): rows of `observed` align with the
    features rows."""
    return {name: hours_ahead(observed[name].to_numpy(), origins, horizon) for name in WEATHER_VARIABLES}


def issued_ahead(forecasts: pd.DataFrame, origin_times: pd.Series, horizon: int) -> tuple[WeatherAhead, np.ndarray]:
    """The weather forecast of each origin's target hours as issued: for every target hour, the newest issue with
    `issued_at <= origin` (never a later one), from one station's forecast table. Returns the variables and the issue
    time behind each cell (origins × horizon, UTC; NaN and NaT where no issue by then holds the hour)."""
    origins = pd.to_datetime(origin_times, utc=True).dt.as_unit("us").reset_index(drop=True)
    leads = pd.to_timedelta(np.tile(np.arange(1, horizon + 1), len(origins)), unit="h")
    requests = pd.DataFrame({"cell": np.arange(len(origins) * horizon), "origin": origins.repeat(horizon).to_numpy()})
    requests["valid_at"] = requests["origin"] + leads
    table = forecasts[["issued_at", "valid_at", *WEATHER_VARIABLES]].copy()
    for column in ("issued_at", "valid_at"):
        table[column] = pd.to_datetime(table[column], utc=True).dt.as_unit("us")
    matched = pd.merge_asof(requests.sort_values("origin", kind="stable"), table.sort_values("issued_at", kind="stable"),
                            left_on="origin", right_on="issued_at", by="valid_at", direction="backward")
    matched = matched.sort_values("cell")
    shape = (len(origins), horizon)
    ahead = {name: matched[name].to_numpy(dtype="float64").reshape(shape) for name in WEATHER_VARIABLES}
    issued = matched["issued_at"].dt.tz_localize(None).to_numpy(dtype="datetime64[us]").reshape(shape)
    return ahead, issued


def fit_weather_scaling(observed: pd.DataFrame, train_rows: np.ndarray) -> dict[str, list[float]]:
    """Mean and spread of each weather input over one station's training span (a constant or absent input: 0, 1)."""
    values = weather_inputs(observed)[train_rows]
    with np.errstate(all="ignore"):
        mean, std = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
    return {"inputs": list(WEATHER_INPUTS), "mean": mean.tolist(), "std": std.tolist()}


def scaled_ahead(ahead: Mapping[str, np.ndarray], scaling: dict[str, list[float]]) -> np.ndarray:
    """The model's weather inputs (origins × horizon × inputs, float32), scaled; a missing value reads as the
    training mean (0)."""
    values = (weather_inputs(ahead) - np.asarray(scaling["mean"])) / np.asarray(scaling["std"])
    return np.nan_to_num(values, nan=0.0).astype("float32")


def weather_samples(inputs: TrainingInputs, spec: NetworkSpec, plan: WindowPlan) -> TrainingSamples:
    """The network's training and validation samples, each with the weather observed at its target hours (scaled per
    station on its training span; the scaling is kept beside the model)."""
    features = {station: pd.read_parquet(inputs.feature_paths[station]) for station in spec.stations}
    observed = {station: pd.read_parquet(observed_weather_path(inputs.feature_paths[station])) for station in spec.stations}
    scaling = {station: fit_weather_scaling(observed[station], (features[station]["split"] == "train").to_numpy())
               for station in spec.stations}
    spans = {}
    for span in ("train", "validation"):
        sets = network_window_sets(features, spec, plan, span)
        spans[span] = stack_window_sets([
            replace(windows, future=scaled_ahead(observed_ahead(observed[station], windows.origin_index, plan.horizon),
                                                 scaling[station]))
            for station, windows in sets.items()])
    return TrainingSamples(spans["train"], spans["validation"], {WEATHER_SCALING_FILE: scaling})


def read_weather_scaling(model_dir: Path) -> dict[str, dict[str, list[float]]]:
    return storage.read_json(model_dir / WEATHER_SCALING_FILE)


def build_weather_model(lookback: int, n_features: int, horizon: int, settings: TrainingSettings, future_inputs: int):
    """Like `tasks.model.train.build_model` (members, LSTM layers, the origin hour's direct path, dropout, weight
    averaging), with a second input: the weather inputs of each of the `horizon` hours ahead."""
    import keras

    layers, units, dropout, members = settings.lstm_layers, settings.lstm_units, settings.dropout, settings.ensemble_size
    history = keras.Input(shape=(lookback, n_features), name="history")
    ahead = keras.Input(shape=(horizon, future_inputs), name="weather_ahead")
    origin_hour = keras.layers.Flatten(name="origin_hour")(keras.layers.Cropping1D((lookback - 1, 0))(history))
    weather = keras.layers.Flatten(name="weather_hours")(ahead)
    forecasts = []
    for member in range(1, members + 1):
        hidden = history
        for layer in range(1, layers + 1):
            hidden = keras.layers.LSTM(units, return_sequences=layer < layers, dropout=dropout,
                                       name=f"m{member}_lstm_{layer}")(hidden)
        hidden = keras.layers.Dropout(dropout, name=f"m{member}_head_dropout")(hidden)
        joined = keras.layers.Concatenate(name=f"m{member}_state_origin_weather")([hidden, origin_hour, weather])
        dense = keras.layers.Dense(DENSE_UNITS, activation="relu", name=f"m{member}_weather_dense")(joined)
        head = keras.layers.Concatenate(name=f"m{member}_head")([joined, dense])
        forecasts.append(keras.layers.Dense(horizon, name=f"m{member}_change_per_horizon")(head))
    several = members > 1
    training = keras.Model([history, ahead], keras.layers.Concatenate(name="members")(forecasts) if several else forecasts[0],
                           name="pm25_lstm_wx_members")
    averaging = {"use_ema": True, "ema_momentum": settings.weight_averaging} if settings.weight_averaging else {}
    training.compile(optimizer=keras.optimizers.Adam(settings.learning_rate, **averaging),
                     loss=masked_mse(horizon_weights(horizon, settings.horizon_weight_power), members),
                     steps_per_execution=STEPS_PER_EXECUTION)
    forecasting = keras.Model([history, ahead],
                              keras.layers.Average(name="ensemble_mean")(forecasts) if several else forecasts[0],
                              name="pm25_lstm_wx")
    return training, forecasting


WEATHER_RECIPE = ModelRecipe(build=build_weather_model, samples=weather_samples)


@task(cache_policy=NO_CACHE, name="train-weather", task_run_name="train the weather model ({model_dir.parent.name})")
def train_weather_task(inputs: TrainingInputs, model_dir: Path, config: TrainingSettings) -> TrainedModel:
    """The weather model of the network model trained on the same inputs (its folder inside that model's)."""
    return train_with_progress(f"weather model {model_dir.parent.name}", inputs, model_dir, config, WEATHER_RECIPE)


@dataclass(frozen=True)
class TrackForecasts:
    """One station's weather-model forecasts of one span (µg/m³, origins × horizon) by track, beside the observed
    targets; for the issued track, which origins had a forecast of every target hour (the others have none: NaN) and
    the issue behind each cell."""

    observed: np.ndarray
    by_track: dict[str, np.ndarray]
    issued_in_full: np.ndarray | None = None
    issue_times: np.ndarray | None = None


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

    result, in_full, issue_times = {}, None, None
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
    return TrackForecasts(observed_targets(series, windows), result, in_full, issue_times)


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
