"""The gbm baseline on generated windows: it learns the change from lagged inputs and stops on validation."""

import numpy as np

from tasks.model.gbm import fit_predict_gbm, lagged_features
from tasks.model.windows import WindowSet


def generated_windows(n: int, seed: int, horizon: int = 3) -> WindowSet:
    """The next hours move by half the last hour's change, plus noise: learnable from the lags."""
    rng = np.random.default_rng(seed)
    inputs = rng.normal(size=(n, 4, 2)).astype("float32")  # column 0 is PM2.5
    last, step = inputs[:, -1, 0], inputs[:, -1, 0] - inputs[:, -2, 0]
    targets = last[:, None] + 0.5 * step[:, None] * np.arange(1, horizon + 1) + rng.normal(0, 0.1, (n, horizon))
    return WindowSet(inputs=inputs, targets=targets.astype("float32"), last_value=last, origin_index=np.arange(n))


def test_lagged_features_are_the_pm25_lags_then_the_origin_hour():
    windows = generated_windows(5, seed=0)
    features = lagged_features(windows, pm25_column=0)
    np.testing.assert_array_equal(features[:, :4], windows.inputs[:, :, 0])
    np.testing.assert_array_equal(features[:, 4:], windows.inputs[:, -1, :])


def test_gbm_learns_the_change_at_the_asked_horizons_only():
    train, validation, test = generated_windows(2000, 1), generated_windows(500, 2), generated_windows(500, 3)
    forecast, on_validation = fit_predict_gbm(train, validation, [test, validation], pm25_column=0, horizons=(1, 3), seed=0)
    assert on_validation.shape == validation.targets.shape
    assert np.isnan(forecast[:, 1]).all() and np.isfinite(forecast[:, [0, 2]]).all()
    truth = test.targets - test.last_value[:, None]
    for column in (0, 2):
        error = np.sqrt(np.mean((forecast[:, column] - truth[:, column]) ** 2))
        assert error < 0.5 * np.std(truth[:, column])  # far better than predicting no change
