"""The `ridge` baseline on tiny arrays: what it reads, and that it learns a linear change."""

import numpy as np

from tasks.model.ridge import ALPHAS, LONG_LAGS, engineered_features, fit_predict_ridge, ridge_paths
from tasks.model.windows import WindowSet, window_inputs

LOOKBACK, FEATURES, HORIZON = 3, 2, 4


def window_set(values: np.ndarray, targets: np.ndarray, origins: np.ndarray) -> WindowSet:
    """Samples at `origins` of an hourly (hours, features) array whose column 0 is PM2.5."""
    inputs = window_inputs(values, LOOKBACK)[origins - LOOKBACK + 1]
    return WindowSet(inputs=inputs, targets=targets[origins], last_value=values[origins, 0], origin_index=origins)


def test_a_sample_reads_nothing_after_its_origin():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(100, FEATURES)).astype("float32")
    origins = np.arange(30, 60)
    before = engineered_features(window_set(values, np.zeros((100, HORIZON)), origins), values[:, 0], 0)
    changed = values.copy()
    changed[60:] = 99.0  # every hour after the last origin
    after = engineered_features(window_set(changed, np.zeros((100, HORIZON)), origins), changed[:, 0], 0)
    np.testing.assert_array_equal(before, after)
    # the look-back, the long lags, the two extremes, every input at the origin and its product with the level
    assert before.shape == (30, LOOKBACK + len(LONG_LAGS) + 2 + 2 * FEATURES)


def test_it_learns_a_change_that_is_linear_in_the_origins_inputs():
    rng = np.random.default_rng(1)
    values = rng.normal(size=(2000, FEATURES)).astype("float32")
    # Each lead's value: the origin's PM2.5 plus a lead-dependent multiple of the other input, plus a little noise.
    change = np.outer(values[:, 1], np.arange(1, HORIZON + 1)) + rng.normal(scale=0.01, size=(2000, HORIZON))
    targets = (values[:, :1] + change).astype("float32")
    train, validation, test = (window_set(values, targets, np.arange(a, b)) for a, b in
                               ((10, 1200), (1200, 1600), (1600, 1990)))
    [forecast] = fit_predict_ridge(train, validation, [test], values[:, 0], 0)
    assert np.isfinite(forecast).all() and forecast.shape == (len(test.origin_index), HORIZON)
    np.testing.assert_allclose(forecast, change[test.origin_index], atol=0.05)


def test_every_penalty_matches_scikit_learns_ridge():
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 5)) * [1, 2, 3, 4, 5] + 7
    y = x @ rng.normal(size=5) + rng.normal(size=300)
    x_mean, y_mean, weights = ridge_paths(x, y)
    for alpha, column in zip(ALPHAS, weights.T):
        reference = Ridge(alpha=alpha).fit(x, y)
        np.testing.assert_allclose(column, reference.coef_, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose((x - x_mean) @ column + y_mean, reference.predict(x), rtol=1e-8)
