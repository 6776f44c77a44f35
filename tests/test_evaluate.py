import numpy as np
import pandas as pd
import pytest

from tasks.model.baselines import climatology, fit_climatology, persistence, seasonal_naive
from tasks.scoring.evaluate import metrics_from_predictions, score, scored_cells


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


def long_table(station: str, observed: list[float], forecast: list[float], scored: list[bool]) -> pd.DataFrame:
    """One horizon-1 row per hour of a station's predictions table."""
    return pd.DataFrame({"station": station, "horizon": 1, "observed": observed, "lstm": forecast, "scored": scored})


def test_pooled_scores_are_over_every_stations_scored_hours_and_per_station_scores_over_its_own():
    a = long_table("A", [10.0, 20.0, 30.0], [12.0, 20.0, 99.0], [True, True, False])  # errors 2, 0 (third not scored)
    b = long_table("B", [5.0, 5.0], [1.0, 5.0], [True, True])  # errors -4, 0
    pooled = metrics_from_predictions(pd.concat([a, b]), horizon=1, models=["lstm"])["lstm"]["h1"]
    assert pooled["n"] == 4
    assert pooled["rmse"] == pytest.approx(np.sqrt((4 + 0 + 16 + 0) / 4)) and pooled["mae"] == pytest.approx(6 / 4)
    alone = metrics_from_predictions(a, horizon=1, models=["lstm"])["lstm"]
    assert alone["h1"] == {"rmse": pytest.approx(np.sqrt(2)), "mae": 1.0, "n": 2}
    assert alone["rmse_by_horizon"] == [pytest.approx(np.sqrt(2))]


def test_a_horizon_with_no_scored_hour_has_no_score():
    table = long_table("A", [1.0], [1.0], [False])
    assert metrics_from_predictions(table, horizon=1, models=["lstm"])["lstm"]["h1"] == {"rmse": None, "mae": None, "n": 0}
