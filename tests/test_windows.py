import numpy as np
import pandas as pd
import pytest

from tasks.core.errors import DataError
from tasks.model.windows import future_targets, make_window_set, plan_windows, window_inputs


def test_window_inputs_match_a_brute_force_loop_and_share_memory():
    series = np.arange(40, dtype="float32").reshape(20, 2)
    windows = window_inputs(series, lookback=4)
    reference = np.stack([series[i : i + 4] for i in range(len(series) - 3)])
    np.testing.assert_array_equal(windows, reference)
    assert np.shares_memory(windows, series)


def test_future_targets_are_the_next_hours_with_nan_past_the_end():
    target = np.arange(6, dtype="float32")
    rows = future_targets(target, horizon=3)
    np.testing.assert_array_equal(rows[0], [1, 2, 3])
    np.testing.assert_array_equal(rows[4], [5, np.nan, np.nan])


def tiny_features(split: list[str]) -> pd.DataFrame:
    n = len(split)
    return pd.DataFrame({"a": np.arange(n, dtype="float32"), "pm25_z": np.arange(n, dtype="float32") / 10,
                         "target_z": np.arange(n, dtype="float32") + 100, "split": split})


def test_span_samples_align_inputs_and_targets_and_mask_other_spans():
    split = ["train"] * 10 + ["validation"] * 5 + ["test"] * 5
    features = tiny_features(split)
    plan = plan_windows(np.array(split), lookback=3, horizon=2, feature_columns=["a"])
    validation = make_window_set(features, plan, "validation")
    # Origins 8..13: every sample has at least one target hour in the validation span (rows 10..14).
    assert validation.origin_index.tolist() == [8, 9, 10, 11, 12, 13]
    for sample, origin in enumerate(validation.origin_index):
        np.testing.assert_array_equal(validation.inputs[sample, :, 0], [origin - 2, origin - 1, origin])
        for step in (1, 2):
            hour = origin + step
            expected = hour + 100 if 10 <= hour < 15 else np.nan
            np.testing.assert_array_equal(validation.targets[sample, step - 1], expected)
    assert validation.last_value.tolist() == pytest.approx([o / 10 for o in validation.origin_index])


def test_train_samples_never_see_validation_targets():
    split = ["train"] * 10 + ["validation"] * 5 + ["test"] * 5
    train = make_window_set(tiny_features(split), plan_windows(np.array(split), 3, 4, ["a"]), "train")
    target_hours = train.origin_index[:, None] + np.arange(1, 5)
    assert np.isnan(train.targets[target_hours >= 10]).all()
    assert np.isfinite(train.targets[target_hours < 10]).all()


def test_span_too_short_for_the_lookback_is_refused():
    split = np.array(["train"] * 2 + ["validation"] * 3 + ["test"] * 3)
    with pytest.raises(DataError, match="too short"):
        plan_windows(split, lookback=4, horizon=1, feature_columns=["a"])
