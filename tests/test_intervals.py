import numpy as np
import pandas as pd
import pytest

from tasks.core.calibration import IntervalTable, level_bin, read_intervals, write_intervals
from tasks.scoring.evaluate import coverage_from_predictions
from tasks.scoring.intervals import fit_intervals


def test_intervals_cover_the_calibrated_share_of_similar_outcomes_at_each_horizon():
    rng = np.random.default_rng(0)
    forecast = np.zeros((20000, 2))
    calibration = rng.normal(0, [1.0, 3.0], size=(20000, 2))
    table = fit_intervals(calibration, forecast, coverage=0.8)
    lower, upper = table.bounds(np.full((1, 2), 10.0))
    assert upper[0, 1] - lower[0, 1] > upper[0, 0] - lower[0, 0]  # wider where errors are larger
    fresh = rng.normal(0, [1.0, 3.0], size=(20000, 2))
    low, high = table.bounds(forecast + 10)
    frame = pd.DataFrame({"horizon": np.tile([1, 2], 20000), "observed": (fresh + 10).ravel(), "scored": True,
                          "lstm": 10.0, "lstm_lower": low.ravel(), "lstm_upper": high.ravel()})
    result = coverage_from_predictions(frame, horizon=2)
    assert result["coverage_80"] == pytest.approx(0.8, abs=0.01)
    assert result["coverage_by_horizon"] == pytest.approx([0.8, 0.8], abs=0.015)


def test_intervals_follow_the_forecasts_level_where_errors_grow_with_it():
    rng = np.random.default_rng(1)
    level = rng.uniform(5, 300, size=(40000, 2))
    observed = level * rng.lognormal(0, [0.2, 0.4], size=level.shape)  # errors proportional to the level
    table = fit_intervals(observed[:20000], level[:20000])
    assert [len(edges) for edges in table.edges] == [9, 9]  # ten bins of 2,000 cells at each lead hour
    lower, upper = table.bounds(level[20000:])
    inside = (observed[20000:] >= lower) & (observed[20000:] <= upper)
    for step in (0, 1):
        fifth = pd.qcut(level[20000:, step], 5, labels=False)
        by_fifth = pd.Series(inside[:, step]).groupby(fifth).mean()
        assert by_fifth.between(0.76, 0.84).all(), by_fifth.tolist()
    # One offset for every level would cover almost every clean hour and far fewer polluted ones.
    residual = observed[:20000, 1] - level[:20000, 1]
    flat = (observed[20000:, 1] >= level[20000:, 1] + np.quantile(residual, 0.1)) & (
        observed[20000:, 1] <= level[20000:, 1] + np.quantile(residual, 0.9))
    flat_by_fifth = pd.Series(flat).groupby(fifth).mean()
    assert flat_by_fifth.iloc[0] > 0.95 and flat_by_fifth.iloc[-1] < 0.7


def test_a_short_calibration_span_gets_fewer_bins_and_an_empty_one_no_interval():
    observed = np.column_stack([np.arange(250.0), np.full(250, np.nan)])
    table = fit_intervals(observed, np.zeros((250, 2)) + np.arange(250.0)[:, None])
    assert len(table.edges[0]) == 1  # 250 observed cells: two bins of at least 100
    assert table.edges[1] == [] and np.isnan(table.lower[1][0])


def test_tied_forecasts_never_leave_a_bin_empty():
    forecast = np.concatenate([np.zeros(900), np.linspace(1, 50, 100)])[:, None]  # most forecasts clipped at zero
    observed = forecast + np.linspace(-3, 3, 1000)[:, None]
    table = fit_intervals(observed, forecast)
    assert table.edges[0] == [] or table.edges[0][0] > 0
    assert np.isfinite(table.lower[0]).all() and np.isfinite(table.upper[0]).all()
    assert level_bin(table.edges[0], np.array([0.0])).tolist() == [0]


def test_bounds_are_clipped_at_zero_and_use_the_bin_of_their_own_level():
    table = IntervalTable(edges=[[10.0]], lower=[[-5.0, -20.0]], upper=[[2.0, 30.0]])
    lower, upper = table.bounds(np.array([[3.0], [10.0], [50.0]]))
    np.testing.assert_array_equal(lower[:, 0], [0.0, 0.0, 30.0])
    np.testing.assert_array_equal(upper[:, 0], [5.0, 40.0, 80.0])


def test_one_offset_per_horizon_of_earlier_registrations_reads_as_one_bin():
    table = IntervalTable.from_json({"lower": [-1.0, -2.0], "upper": [3.0, 4.0]})
    lower, upper = table.bounds(np.array([[10.0, 10.0]]))
    np.testing.assert_array_equal(lower, [[9.0, 8.0]])
    np.testing.assert_array_equal(upper, [[13.0, 14.0]])


def test_a_model_folder_keeps_its_tables_and_tables_of_an_earlier_method_are_not_read(tmp_path):
    table = IntervalTable(edges=[[10.0]], lower=[[-5.0, -20.0]], upper=[[2.0, 30.0]])
    write_intervals(tmp_path, {"A": table})
    assert read_intervals(tmp_path) == {"A": table}
    (tmp_path / "intervals.json").write_text('{"A": {"lower": [-1.0], "upper": [1.0]}}')
    assert read_intervals(tmp_path) is None
    assert read_intervals(tmp_path / "missing") is None
