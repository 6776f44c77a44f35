import numpy as np
import pandas as pd
import pytest

from tasks.core.errors import DataError
from tasks.model.features import (
    build_features,
    fill_gaps,
    fit_preprocessing,
    split_bounds,
    target_forward,
    to_hourly_grid,
)
from tasks.model.inputs import PM25_INPUT, target_inverse
from tests.conftest import EMBASSY_INPUTS, EMBASSY_WINDS, canonical_frame, uci_frame


def grid_of(hours: int, seed: int = 0) -> pd.DataFrame:
    return to_hourly_grid(canonical_frame(uci_frame(hours, seed=seed)), EMBASSY_INPUTS)


def fit(train: pd.DataFrame, max_gap_hours: int = 3, transform: str = "identity"):
    return fit_preprocessing(train, max_gap_hours, transform, EMBASSY_INPUTS, EMBASSY_WINDS)


def test_hourly_grid_adds_absent_hours_as_missing_rows():
    grid = to_hourly_grid(canonical_frame(uci_frame(6).drop(index=[2, 3])), EMBASSY_INPUTS)
    assert len(grid) == 6 and grid.iloc[2:4].isna().all().all()


def test_a_stations_grid_spans_the_whole_networks_hours():
    rows = canonical_frame(uci_frame(6))
    grid = to_hourly_grid(rows, EMBASSY_INPUTS, start=rows["timestamp"].iloc[0] - pd.Timedelta(hours=2),
                          end=rows["timestamp"].iloc[-1] + pd.Timedelta(hours=3))
    assert len(grid) == 11 and grid["pm25"].iloc[:2].isna().all() and grid["pm25"].iloc[-3:].isna().all()
    assert grid["pm25"].iloc[2:8].notna().all()


def test_split_is_by_time_with_spans_counted_from_the_end():
    bounds = split_bounds(5 * 24, test_days=1, validation_days=2, min_train_hours=24)
    assert (bounds.validation_start, bounds.test_start, bounds.end) == (48, 96, 120)


def test_too_little_data_for_three_spans_is_refused():
    with pytest.raises(DataError, match="too little data"):
        split_bounds(3 * 24, test_days=1, validation_days=2, min_train_hours=24)


def test_short_gaps_carry_forward_and_long_gaps_use_training_statistics():
    frame = pd.DataFrame({"x": [1.0, np.nan, np.nan, 4.0, np.nan, np.nan, np.nan, np.nan]})
    filled = fill_gaps(frame, max_gap_hours=2, fill_values={"x": -1.0})
    assert filled["x"].tolist() == [1.0, 1.0, 1.0, 4.0, 4.0, 4.0, -1.0, -1.0]


def test_fitted_statistics_come_from_the_training_span_only():
    grid = grid_of(200)
    params = fit(grid.iloc[:100])
    changed = grid.copy()
    changed.iloc[100:, :7] = changed.iloc[100:, :7] * 10 + 500  # wild values outside the training span
    assert fit(changed.iloc[:100]) == params
    assert params.scale_mean["temp"] == pytest.approx(grid["temp"].iloc[:100].mean())
    assert params.target_mean == pytest.approx(grid["pm25"].iloc[:100].mean())


def test_features_scale_with_train_statistics_and_keep_missing_targets_missing():
    grid = grid_of(96)
    grid.iloc[50, grid.columns.get_loc("pm25")] = np.nan
    params = fit(grid.iloc[:48])
    features = build_features(grid, params)
    train = features.iloc[:48]
    assert train["temp"].mean() == pytest.approx(0, abs=1e-5)
    assert np.isnan(features["target"].iloc[50]) and np.isnan(features["target_z"].iloc[50])
    assert features[PM25_INPUT].iloc[50] == features[PM25_INPUT].iloc[49]  # input carried forward
    assert features["pm25_observed"].iloc[50] == 0
    assert set(features.filter(like="wind_dir_").sum(axis=1)) == {1.0}
    assert features[params.feature_columns].notna().all().all()


def test_target_never_observed_in_training_is_refused():
    grid = grid_of(48)
    grid["pm25"] = np.nan
    with pytest.raises(DataError, match="never observed"):
        fit(grid, transform="log1p")


def test_an_input_never_observed_in_training_is_filled_with_zero_not_nan():
    grid = grid_of(96)
    grid["pres"] = np.nan
    params = fit(grid.iloc[:48])
    assert params.fill_values["pres"] == 0.0 and params.scale_std["pres"] == 1.0
    assert build_features(grid, params)[params.feature_columns].notna().all().all()


@pytest.mark.parametrize("transform", ["log1p", "identity"])
def test_target_transform_round_trips(transform):
    values = np.array([0.0, 12.0, 994.0])
    assert target_inverse(target_forward(values, transform), transform) == pytest.approx(values)
