"""The weather model, `lstm_wx`: the network LSTM's look-back, plus the weather of each of the hours it forecasts.

It learns by perfect prognosis: in the training and validation spans the weather observed at the target hours (each
station's own readings, `observed_weather.parquet` beside its features) stands in for a forecast of it, so training
needs no archive of old forecasts. Its forecasts are then made three ways, each scored as what it is:

- `lstm_wx_perfect`: fed the weather observed at the target hours. An upper bound (what a perfect weather forecast
  would buy), never a forecast skill.
- `lstm_wx_noisy`: fed that weather with forecast-like errors drawn onto it (`tasks.model.weather_errors`).
- `lstm_wx`: fed a weather forecast as issued: for each target hour the newest issue at or before the origin.

What it reads ahead is `tasks.model.weather_ahead`; its forecasts, like every trained model's, are made in
`tasks.model.predict`.

Design (chosen on the validation span, docs/weather.md): the weather inputs of the next hours, flattened, join the
LSTM's last state and the origin hour's inputs; a dense layer of DENSE_UNITS reads them, and the output layer reads
its units beside what it read. The model lives in its network model's folder (`weather-<version>/`), trained on the
same features, window plan and settings.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.core.home import observed_weather_path
from tasks.core.settings import TrainingSettings
from tasks.model.network_inputs import NetworkSpec, network_window_sets
from tasks.model.train import (
    LayerSeeds,
    ModelRecipe,
    TrainedModel,
    TrainingInputs,
    TrainingSamples,
    lstm_ensemble,
    train_with_progress,
)
from tasks.model.weather_ahead import (
    WEATHER_SCALING_FILE,
    fit_weather_scaling,
    observed_ahead,
    scaled_ahead,
)
from tasks.model.windows import WindowPlan, stack_window_sets

DENSE_UNITS = 128


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


def build_weather_model(lookback: int, n_features: int, horizon: int, settings: TrainingSettings, future_inputs: int):
    """Like `tasks.model.train.build_model` (members, LSTM layers, the origin hour's direct path, dropout, weight
    averaging), with a second input: the weather inputs of each of the `horizon` hours ahead."""
    import keras

    history = keras.Input(shape=(lookback, n_features), name="history")
    ahead = keras.Input(shape=(horizon, future_inputs), name="weather_ahead")
    origin_hour = keras.layers.Flatten(name="origin_hour")(keras.layers.Cropping1D((lookback - 1, 0))(history))
    weather = keras.layers.Flatten(name="weather_hours")(ahead)

    def head(member: int, state: Any, seeds: LayerSeeds) -> Any:
        joined = keras.layers.Concatenate(name=f"m{member}_state_origin_weather")([state, origin_hour, weather])
        dense = seeds.dense(DENSE_UNITS, activation="relu", name=f"m{member}_weather_dense")(joined)
        both = keras.layers.Concatenate(name=f"m{member}_head")([joined, dense])
        return seeds.dense(horizon, name=f"m{member}_change_per_horizon")(both)

    return lstm_ensemble([history, ahead], history, head, horizon, settings, "pm25_lstm_wx")


WEATHER_RECIPE = ModelRecipe(build=build_weather_model, samples=weather_samples)


@task(cache_policy=NO_CACHE, name="train-weather", task_run_name="train the weather model ({model_dir.parent.name})")
def train_weather_task(inputs: TrainingInputs, model_dir: Path, config: TrainingSettings,
                       timeout_seconds: float) -> TrainedModel:
    """The weather model of the network model trained on the same inputs (its folder inside that model's)."""
    return train_with_progress(f"weather model {model_dir.parent.name}", inputs, model_dir, config, timeout_seconds,
                               WEATHER_RECIPE)


