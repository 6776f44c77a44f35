import numpy as np
import pandas as pd
import pytest

from tasks.evaluate import (
    climatology, fit_climatology, fit_interval_offsets, interval_coverage, persistence, score, scored_cells, seasonal_naive,
)


def test_persistence_repeats_the_origin_reading():
    series = np.array([1.0, 2.0, np.nan, 4.0])
    forecast = persistence(series, np.array([1, 2]), horizon=3)
    np.testing.assert_array_equal(forecast[0], [2, 2, 2])
    assert np.isnan(forecast[1]).all()


def test_seasonal_naive_uses_the_same_hour_a_day_earlier():
    series = np.arange(60, dtype="float64")
    forecast = seasonal_naive(series, np.array([30]), horizon=24)
    # Target hour 30+h; a day earlier is 6+h.
    np.testing.assert_array_equal(forecast[0], np.arange(7, 31))


def test_seasonal_naive_falls_back_to_the_last_reading_before_a_gap():
    series = np.arange(60, dtype="float64")
    series[10] = np.nan
    assert seasonal_naive(series, np.array([33]), horizon=1)[0, 0] == 9.0


def test_climatology_is_the_training_mean_by_month_and_hour():
    stamps = pd.Series(pd.date_range("2012-01-01", periods=24 * 62, freq="h"))
    series = (stamps.dt.hour * 10 + stamps.dt.month).astype(float).to_numpy()
    train = (stamps.dt.month == 1).to_numpy()
    table = fit_climatology(stamps, series, train)
    forecast = climatology(table, stamps, np.array([5]), horizon=2)
    np.testing.assert_array_equal(forecast[0], [61, 71])
    later = climatology(table, stamps, np.array([24 * 40]), horizon=1)
    assert np.isnan(later[0, 0])  # February is outside the training months here


def test_scores_cover_only_observed_targets_from_observed_origins_for_every_model():
    observed = np.array([[1.0, np.nan], [3.0, 4.0], [5.0, 6.0]])
    forecasts = {"a": np.array([[2.0, 0.0], [3.0, 5.0], [9.0, 9.0]]), "b": np.array([[1.0, 1.0], [np.nan, 4.0], [5.0, 6.0]])}
    cells = scored_cells(observed, np.array([True, True, False]), forecasts)
    np.testing.assert_array_equal(cells, [[True, False], [False, True], [False, False]])
    assert score(observed[:, 0], forecasts["a"][:, 0], cells[:, 0]) == {"rmse": 1.0, "mae": 1.0, "n": 1}
    assert score(observed[:, 1], forecasts["a"][:, 1], cells[:, 1]) == {"rmse": 1.0, "mae": 1.0, "n": 1}


def test_a_model_with_some_horizons_only_constrains_those_horizons():
    observed = np.ones((2, 3))
    forecasts = {"full": np.ones((2, 3)), "partial": np.array([[1.0, np.nan, np.nan], [np.nan, np.nan, np.nan]])}
    cells = scored_cells(observed, np.array([True, True]), forecasts)
    np.testing.assert_array_equal(cells, [[True, True, True], [False, True, True]])
    assert score(observed[:, 1], forecasts["partial"][:, 1], cells[:, 1]) == {"rmse": None, "mae": None, "n": 0}


def test_conformal_intervals_cover_the_calibrated_share_of_similar_outcomes():
    rng = np.random.default_rng(0)
    forecast = np.zeros((20000, 2))
    calibration = rng.normal(0, [1.0, 3.0], size=(20000, 2))
    lower, upper = fit_interval_offsets(calibration, forecast, coverage=0.8)
    assert upper[1] > upper[0] > 0 > lower[0] > lower[1]  # wider where errors are larger
    fresh = rng.normal(0, [1.0, 3.0], size=(20000, 2))
    result = interval_coverage(fresh, forecast + lower, forecast + upper, np.ones_like(fresh, dtype=bool))
    assert result["coverage_80"] == pytest.approx(0.8, abs=0.01)
