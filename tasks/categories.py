"""The air-quality category issued for the next 24 hours: the forecast's 24-hour mean, quantile-mapped.

A forecast trained on squared error is drawn toward the mean. In the 2014 nightly backtest the model's next-day
means were closer to the observed ones than the 02:00 reading (MAE 33.9 against 42.9 µg/m³), yet named China's
daily category less often (0.408 against 0.476): on clean days they lay 28 µg/m³ above the observation, in the
next category. So the category is not read from the mean itself: per station, each quantile of the validation
span's 24-hour mean forecasts is mapped onto the same quantile of the observed 24-hour means (quantile mapping),
which gives the issued categories the spread of the observed ones. The hourly forecasts are left as they are.
The choice was made on the validation span (`benchmarks/category_methods.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tasks import storage
from tasks.verify import MIN_HOURS_OF_MEAN, category

CATEGORIES_FILE = "categories.json"
DAY_HOURS = 24
QUANTILES = np.linspace(0, 1, 101)
METHOD = ("quantile mapping of the LSTM's 24-hour mean forecasts onto the observed 24-hour means, per station, "
          "over every origin of the validation span with a valid observed mean")


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
    return forecast[:, :DAY_HOURS].mean(axis=1)


def day_means(observed: np.ndarray, forecast: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per origin (row): the mean of the first 24 forecast hours, and of the observed ones where at least
    MIN_HOURS_OF_MEAN were observed (NaN otherwise). Empty where the horizon is shorter than a day."""
    if forecast.shape[1] < DAY_HOURS:
        return np.empty(0), np.empty(0)
    seen = np.isfinite(observed[:, :DAY_HOURS])
    hours = seen.sum(axis=1)
    total = np.where(seen, observed[:, :DAY_HOURS], 0.0).sum(axis=1)
    observed_mean = np.where(hours >= MIN_HOURS_OF_MEAN, total / np.maximum(hours, 1), np.nan)
    return day_mean_forecast(forecast), observed_mean


def fit_day_map(observed: np.ndarray, forecast: np.ndarray) -> DayMeanMap:
    """The map from the 24-hour means of calibration forecasts (origins x lead hours) and their outcomes."""
    forecast_mean, observed_mean = day_means(observed, forecast)
    return map_of_means(forecast_mean, observed_mean)


def map_of_means(forecast_mean: np.ndarray, observed_mean: np.ndarray) -> DayMeanMap:
    """The map from 24-hour mean forecasts and the observed means (NaN where not valid), origin by origin."""
    valid = np.isfinite(forecast_mean) & np.isfinite(observed_mean)
    if not valid.any():
        return PLAIN_MEAN
    return DayMeanMap([float(value) for value in np.quantile(forecast_mean[valid], QUANTILES)],
                      [float(value) for value in np.quantile(observed_mean[valid], QUANTILES)])


def write_day_maps(model_dir: Path, maps: dict[str, DayMeanMap]) -> Path:
    """A model's maps by station, kept beside the model (`categories.json`)."""
    return storage.write_method_tables(model_dir / CATEGORIES_FILE, METHOD,
                                       {station: item.to_json() for station, item in maps.items()})


def read_day_maps(model_dir: Path) -> dict[str, DayMeanMap] | None:
    """The model's maps by station; None where it has none, or ones made by another method (which a caller fits
    again)."""
    maps = storage.read_method_tables(model_dir / CATEGORIES_FILE, METHOD)
    return None if maps is None else {station: DayMeanMap.from_json(item) for station, item in maps.items()}


def maps_key(maps: dict[str, DayMeanMap] | None) -> str:
    """A short key of a model's maps, for the caches of what they were applied to."""
    return storage.fingerprint({station: item.to_json() for station, item in (maps or {}).items()})
