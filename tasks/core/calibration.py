"""What a model is calibrated with, kept beside it: its 80 % interval tables (`tasks.scoring.intervals` fits them)
and its maps of the 24-hour category (`tasks.scoring.categories` fits them). Scoring writes them; the published
forecast and the backtest's nights apply them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tasks.core import storage
from tasks.core.air_quality import category
from tasks.core.hours import HOURS_PER_DAY

INTERVALS_FILE = "intervals.json"
LEVEL_BINS = 10
INTERVAL_METHOD = (f"split conformal by forecast level: per station and horizon, the residual quantiles 0.1 and 0.9 "
                   f"of the LSTM's validation forecasts in up to {LEVEL_BINS} bins of equal count by the forecast's "
                   "size")
CATEGORIES_FILE = "categories.json"
DAY_MAP_METHOD = ("quantile mapping of the LSTM's 24-hour mean forecasts onto the observed 24-hour means, per "
                  "station, over every origin of the validation span with a valid observed mean")


@dataclass(frozen=True)
class IntervalTable:
    """Per lead hour: the forecast levels that separate its bins (ascending), and per bin the offsets added to a
    forecast for the interval's ends."""

    edges: list[list[float]]
    lower: list[list[float]]
    upper: list[list[float]]

    def bounds(self, forecast: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The interval of each forecast (`forecast`'s last axis is the lead hour), clipped at zero."""
        forecast = np.asarray(forecast, dtype="float64")
        lower, upper = np.empty_like(forecast), np.empty_like(forecast)
        for step, (edges, low, high) in enumerate(zip(self.edges, self.lower, self.upper)):
            bins = level_bin(edges, forecast[..., step])
            lower[..., step] = forecast[..., step] + np.asarray(low)[bins]
            upper[..., step] = forecast[..., step] + np.asarray(high)[bins]
        return np.clip(lower, 0, None), np.clip(upper, 0, None)

    def to_json(self) -> dict[str, Any]:
        return {"edges": self.edges, "lower": self.lower, "upper": self.upper}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IntervalTable:
        """Also reads the one offset per lead hour of models registered before the level bins."""
        if "edges" not in data:
            return cls([[] for _ in data["lower"]], [[value] for value in data["lower"]],
                       [[value] for value in data["upper"]])
        return cls(data["edges"], data["lower"], data["upper"])


def level_bin(edges: list[float], values: np.ndarray) -> np.ndarray:
    """The bin of each value: 0 below the first edge, i from edge i-1 (inclusive) up to edge i."""
    return np.searchsorted(np.asarray(edges, dtype="float64"), values, side="right")


def tables_key(tables: dict[str, IntervalTable]) -> str:
    """A short key of a model's interval tables, for the caches of what they were applied to."""
    return storage.fingerprint({station: table.to_json() for station, table in tables.items()})


def track_intervals_file(track: str) -> str:
    """Where a model fed several ways (the weather model) keeps the interval tables of a track other than its own."""
    return f"intervals_{track}.json"


def write_intervals(model_dir: Path, tables: dict[str, IntervalTable], file_name: str = INTERVALS_FILE) -> Path:
    """A model's interval tables, by station, kept beside the model (`intervals.json`)."""
    return storage.write_method_tables(model_dir / file_name, INTERVAL_METHOD,
                                       {station: table.to_json() for station, table in tables.items()})


def read_intervals(model_dir: Path, file_name: str = INTERVALS_FILE) -> dict[str, IntervalTable] | None:
    """The model's interval tables by station; None where it has none, or only ones made by an earlier method
    (which a caller fits again)."""
    tables = storage.read_method_tables(model_dir / file_name, INTERVAL_METHOD)
    return None if tables is None else {station: IntervalTable.from_json(table) for station, table in tables.items()}


@dataclass(frozen=True)
class DayMeanMap:
    """Matching quantiles of the calibration span's 24-hour mean forecasts and observed means (ascending); empty
    where there was nothing to calibrate on, and then the mean is its own category."""

    forecast: list[float]
    observed: list[float]

    def categories(self, means: np.ndarray) -> np.ndarray:
        """The category issued for each 24-hour mean forecast."""
        means = np.asarray(means, dtype="float64")
        return category(np.interp(means, self.forecast, self.observed) if self.forecast else means)

    def issue(self, forecast: np.ndarray) -> np.ndarray:
        """The category issued at each origin (row of hourly forecasts, the nearest first) for its next 24 hours."""
        return self.categories(day_mean_forecast(forecast))

    def to_json(self) -> dict[str, Any]:
        return {"forecast": self.forecast, "observed": self.observed}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DayMeanMap:
        return cls(data["forecast"], data["observed"])


PLAIN_MEAN = DayMeanMap([], [])  # no map: the mean forecast's own category


def day_mean_forecast(forecast: np.ndarray) -> np.ndarray:
    """Per origin (row): the mean of its first 24 forecast hours (of them all, where it has fewer)."""
    return forecast[:, :HOURS_PER_DAY].mean(axis=1)


def write_day_maps(model_dir: Path, maps: dict[str, DayMeanMap]) -> Path:
    """A model's maps by station, kept beside the model (`categories.json`)."""
    return storage.write_method_tables(model_dir / CATEGORIES_FILE, DAY_MAP_METHOD,
                                       {station: item.to_json() for station, item in maps.items()})


def read_day_maps(model_dir: Path) -> dict[str, DayMeanMap] | None:
    """The model's maps by station; None where it has none, or ones made by another method (which a caller fits
    again)."""
    maps = storage.read_method_tables(model_dir / CATEGORIES_FILE, DAY_MAP_METHOD)
    return None if maps is None else {station: DayMeanMap.from_json(item) for station, item in maps.items()}


def maps_key(maps: dict[str, DayMeanMap] | None) -> str:
    """A short key of a model's maps, for the caches of what they were applied to."""
    return storage.fingerprint({station: item.to_json() for station, item in (maps or {}).items()})
