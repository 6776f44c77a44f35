"""The `gbm` baseline: scikit-learn gradient boosting on lagged features, one model per reported horizon.

It sees what the LSTM sees at the forecast origin (the look-back's PM2.5 readings and the origin hour's
inputs), learns the same change-from-last-hour target on the same training span, stops adding trees
when the validation span stops improving (as the LSTM stops its epochs), and is scored on the same
hours: a strong, cheap yardstick that the LSTM has to beat.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tasks.model.train import change_targets
from tasks.model.windows import WindowSet

GBM_PARAMS = {"max_iter": 1000, "learning_rate": 0.05, "max_leaf_nodes": 31, "min_samples_leaf": 40,
              "l2_regularization": 1.0, "early_stopping": True, "n_iter_no_change": 20}


def lagged_features(windows: WindowSet, pm25_column: int) -> np.ndarray:
    """Per sample: every PM2.5 reading of the look-back window, then all features at the origin hour."""
    return np.concatenate([windows.inputs[:, :, pm25_column], windows.inputs[:, -1, :]], axis=1)


def fit_predict_gbm(train: WindowSet, validation: WindowSet, forecast_sets: Sequence[WindowSet], pm25_column: int,
                    horizons: tuple[int, ...], seed: int) -> list[np.ndarray]:
    """Change-from-last-hour forecasts (n, horizon) for each of `forecast_sets`, at `horizons`; NaN at the others."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    train_x, validation_x = lagged_features(train, pm25_column), lagged_features(validation, pm25_column)
    train_change, validation_change = change_targets(train), change_targets(validation)
    forecast_x = [lagged_features(windows, pm25_column) for windows in forecast_sets]
    forecasts = [np.full(windows.targets.shape, np.nan, dtype="float64") for windows in forecast_sets]
    for horizon in horizons:
        fit_rows = np.isfinite(train_change[:, horizon - 1])
        stop_rows = np.isfinite(validation_change[:, horizon - 1])
        model = HistGradientBoostingRegressor(random_state=seed, **GBM_PARAMS)
        model.fit(train_x[fit_rows], train_change[fit_rows, horizon - 1],
                  X_val=validation_x[stop_rows], y_val=validation_change[stop_rows, horizon - 1])
        for x, forecast in zip(forecast_x, forecasts):
            forecast[:, horizon - 1] = model.predict(x)
    return forecasts
