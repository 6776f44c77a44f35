"""What the weather model reads of the hours it forecasts: for each origin and lead hour, the weather observed then
(perfect prognosis, from `observed_weather.parquet` beside the features) or forecast for then as issued (the newest
issue at or before the origin, never a later one), as the model's scaled inputs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.core import storage
from tasks.core.weather import WEATHER_VARIABLES
from tasks.model.weather_inputs import WEATHER_INPUTS, weather_inputs

WEATHER_SCALING_FILE = "weather_scaling.json"  # beside the weather model: each station's scaling of its inputs


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


def read_weather_scaling(model_dir: Path) -> dict[str, dict[str, list[float]]]:
    return storage.read_json(model_dir / WEATHER_SCALING_FILE)
