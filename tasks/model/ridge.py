"""The `ridge` baseline: a linear model per station and lead hour on engineered features of the readings up to the
origin, fitted on the training span with its penalty chosen on the validation span.

Its features: the look-back's PM2.5, PM2.5 12 and 24 hours before the origin, its highest and lowest reading of the
24 hours up to the origin, every input of the origin hour (the weather, the daily and yearly cycles, the PM2.5
means, and in a network every station's shared readings, so the neighbours'), and each of those inputs times the
origin's PM2.5, since a change scales with the level it starts from (on the embassy file's validation span, with them,
0.941 / 0.854 / 0.797 of persistence's RMSE at 1 / 6 / 24 h, `pm25 run` on 2026-12-03; without them, in a prototype
fitted with scikit-learn, about 0.95 / 0.88 / 0.80). Like
`gbm` it learns the change from the origin's reading: a strong linear yardstick, cheap, that the LSTMs have to
beat.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from tasks.model.train import change_targets
from tasks.model.windows import WindowSet

ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0)  # the penalties tried, each lead choosing on the validation span
LONG_LAGS = (12, 24)
EXTREMES_HOURS = 24


def engineered_features(windows: WindowSet, pm25: np.ndarray, pm25_column: int) -> np.ndarray:
    """Per sample: the look-back's PM2.5, PM2.5 at LONG_LAGS hours before the origin (0, the training mean, before
    the first hour), its maximum and minimum over the EXTREMES_HOURS up to the origin, every input at the origin
    hour, and each of those times the origin's PM2.5. `pm25` is the station's hourly PM2.5 input (standardised,
    gaps filled from the past only)."""
    series = pd.Series(pm25, dtype="float64")
    origins = windows.origin_index
    lags = np.column_stack([series.shift(lag).fillna(0.0).to_numpy()[origins] for lag in LONG_LAGS])
    recent = series.rolling(EXTREMES_HOURS, min_periods=1)
    extremes = np.column_stack([recent.max().to_numpy()[origins], recent.min().to_numpy()[origins]])
    origin_hour = windows.inputs[:, -1, :]
    level = origin_hour[:, pm25_column : pm25_column + 1]
    return np.concatenate([windows.inputs[:, :, pm25_column], lags, extremes, origin_hour, level * origin_hour], axis=1)


def ridge_paths(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Every penalty's ridge fit of `y` on `x` at once (the intercept unpenalised, as scikit-learn's `Ridge`): one
    eigendecomposition of the centred Gram matrix serves every ALPHAS. Returns the column means, the target's mean,
    and the weights (features, len(ALPHAS))."""
    x_mean, y_mean = x.mean(axis=0), y.mean()
    centred = x - x_mean
    eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred)
    projected = eigenvectors.T @ (centred.T @ (y - y_mean))
    weights = eigenvectors @ (projected[:, None] / (eigenvalues[:, None] + np.asarray(ALPHAS)[None, :]))
    return x_mean, y_mean, weights


def fit_predict_ridge(train: WindowSet, validation: WindowSet, forecast_sets: Sequence[WindowSet], pm25: np.ndarray,
                      pm25_column: int) -> list[np.ndarray]:
    """Change-from-last-hour forecasts (n, horizon) for each of `forecast_sets`, at every lead hour."""
    train_x, validation_x = (engineered_features(windows, pm25, pm25_column) for windows in (train, validation))
    mean, std = train_x.mean(axis=0), train_x.std(axis=0)
    std[std == 0] = 1.0
    scale = lambda x: (x - mean) / std  # noqa: E731  fitted on the training span only
    train_x, validation_x = scale(train_x), scale(validation_x)
    forecast_x = [scale(engineered_features(windows, pm25, pm25_column)) for windows in forecast_sets]
    train_change, validation_change = change_targets(train), change_targets(validation)
    forecasts = [np.full(windows.targets.shape, np.nan, dtype="float64") for windows in forecast_sets]
    for lead in range(train_change.shape[1]):
        fit_rows, check_rows = np.isfinite(train_change[:, lead]), np.isfinite(validation_change[:, lead])
        x_mean, y_mean, weights = ridge_paths(train_x[fit_rows], train_change[fit_rows, lead])
        errors = ((validation_x[check_rows] - x_mean) @ weights + y_mean - validation_change[check_rows, lead, None]) ** 2
        chosen = weights[:, int(np.argmin(errors.mean(axis=0)))]
        for x, forecast in zip(forecast_x, forecasts):
            forecast[:, lead] = (x - x_mean) @ chosen + y_mean
    return forecasts
