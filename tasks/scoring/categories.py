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

import numpy as np

from tasks.core.air_quality import MIN_HOURS_OF_MEAN
from tasks.core.calibration import PLAIN_MEAN, DayMeanMap, day_mean_forecast
from tasks.core.hours import HOURS_PER_DAY

QUANTILES = np.linspace(0, 1, 101)


def day_means(observed: np.ndarray, forecast: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per origin (row): the mean of the first 24 forecast hours, and of the observed ones where at least
    MIN_HOURS_OF_MEAN were observed (NaN otherwise). Empty where the horizon is shorter than a day."""
    if forecast.shape[1] < HOURS_PER_DAY:
        return np.empty(0), np.empty(0)
    seen = np.isfinite(observed[:, :HOURS_PER_DAY])
    hours = seen.sum(axis=1)
    total = np.where(seen, observed[:, :HOURS_PER_DAY], 0.0).sum(axis=1)
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
