"""The category issued for the next 24 hours: quantile mapping of the mean forecast, fitted on validation."""

import numpy as np
import pytest

from tasks.core.calibration import DayMeanMap, maps_key, read_day_maps, write_day_maps
from tasks.scoring.categories import day_means, fit_day_map


def test_day_means_need_twenty_observed_hours_and_a_full_day():
    forecast = np.vstack([np.full(24, 50.0), np.full(24, 10.0)])
    observed = np.vstack([np.r_[np.full(20, 30.0), np.full(4, np.nan)], np.r_[np.full(19, 30.0), np.full(5, np.nan)]])
    forecast_mean, observed_mean = day_means(observed, forecast)
    assert forecast_mean.tolist() == [50.0, 10.0] and observed_mean[0] == 30.0 and np.isnan(observed_mean[1])
    assert day_means(observed[:, :12], forecast[:, :12])[0].size == 0


def test_a_forecast_drawn_toward_the_mean_gets_the_observed_spread_back():
    rng = np.random.default_rng(0)
    observed_means = rng.gamma(1.5, 60.0, 2000)
    shrunk = 0.5 * observed_means + 0.5 * observed_means.mean()  # every forecast halfway to the mean
    day_map = fit_day_map(np.repeat(observed_means[:, None], 24, axis=1), np.repeat(shrunk[:, None], 24, axis=1))
    # a clean day, forecast well above 35 by the shrunk model, is issued as excellent again
    clean = 0.5 * 20.0 + 0.5 * observed_means.mean()
    assert clean > 35 and day_map.categories(np.array([clean]))[0] == 0
    assert day_map.categories(np.array([0.5 * 300.0 + 0.5 * observed_means.mean()]))[0] == 5
    assert np.all(np.diff(day_map.categories(np.linspace(0, 600, 200))) >= 0)  # never a lower category for more


def test_nothing_observed_leaves_the_plain_mean():
    day_map = fit_day_map(np.full((3, 24), np.nan), np.full((3, 24), 80.0))
    assert day_map == DayMeanMap([], []) and day_map.categories(np.array([80.0]))[0] == 2


def test_maps_are_kept_beside_the_model_and_keyed(tmp_path):
    maps = {"A": DayMeanMap([0.0, 100.0], [0.0, 80.0])}
    assert read_day_maps(tmp_path) is None
    write_day_maps(tmp_path, maps)
    assert read_day_maps(tmp_path) == maps
    assert maps_key(maps) != maps_key({"A": DayMeanMap([0.0, 100.0], [0.0, 90.0])})


def test_maps_of_another_method_are_not_read(tmp_path):
    (tmp_path / "categories.json").write_text('{"method": "something earlier", "stations": {}}')
    assert read_day_maps(tmp_path) is None


@pytest.mark.parametrize("means", [np.array([-5.0]), np.array([1e4])])
def test_means_beyond_the_calibration_span_keep_its_end_categories(means):
    day_map = DayMeanMap([10.0, 100.0], [5.0, 300.0])
    assert day_map.categories(means)[0] == (0 if means[0] < 0 else 5)
