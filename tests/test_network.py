"""The network model's inputs on tiny generated stations: one station reads only its own features (so the
network model of one station is that station's model), several read every station's recent PM2.5."""

import numpy as np
import pandas as pd

from tasks.model.network_inputs import NetworkSpec, input_names, station_inputs, station_window_set
from tasks.model.windows import plan_windows

COLUMNS = ["temp", "pm25_z"]


def features(offset: float, hours: int = 12) -> pd.DataFrame:
    values = np.arange(hours, dtype="float32") + offset
    split = ["train"] * 6 + ["validation"] * 3 + ["test"] * 3
    return pd.DataFrame({"temp": -values, "pm25_z": values, "pm25_change_1h": np.full(hours, offset, "float32"),
                         "target_z": values + 1, "split": split[:hours]})


def test_one_station_reads_its_own_features_only():
    spec = NetworkSpec.of(["A"], COLUMNS)
    assert not spec.network_inputs and spec.shared_features == []
    inputs = station_inputs({"A": features(0)}, spec, COLUMNS)
    np.testing.assert_array_equal(inputs["A"], features(0)[COLUMNS].to_numpy(dtype="float32"))


def test_every_station_shares_its_pm25_and_weather_changes_where_the_features_have_them():
    spec = NetworkSpec.of(["A", "B"], ["temp", "pm25_z", "pm25_change_1h", "dewp_change_3h", "pres_change_3h",
                                       "wind_speed", "pm25_mean_24h"])
    assert spec.shared_features == ["pm25_z", "pm25_change_1h", "dewp_change_3h", "pres_change_3h", "wind_speed"]
    embassy_like = NetworkSpec.of(["A", "B"], ["temp", "wind_run", "pm25_z", "pm25_change_1h", "dewp_change_3h"])
    assert embassy_like.shared_features == ["pm25_z", "pm25_change_1h", "dewp_change_3h"]


def test_each_station_reads_every_stations_pm25_and_which_station_it_is():
    frames = {"B": features(100), "A": features(0), "C": features(200)}
    spec = NetworkSpec.of(list(frames), [*COLUMNS, "pm25_change_1h"])
    assert spec.stations == ["A", "B", "C"] and spec.shared_features == ["pm25_z", "pm25_change_1h"]
    inputs = station_inputs(frames, spec, COLUMNS)
    names = input_names(spec, COLUMNS)
    assert names == [*COLUMNS, "A:pm25_z", "A:pm25_change_1h", "B:pm25_z", "B:pm25_change_1h", "C:pm25_z",
                     "C:pm25_change_1h", "is_A", "is_B", "is_C"]
    hour = 5
    row_of_b = dict(zip(names, inputs["B"][hour]))
    assert row_of_b["temp"] == -105 and row_of_b["pm25_z"] == 105  # its own features first
    assert (row_of_b["A:pm25_z"], row_of_b["C:pm25_z"], row_of_b["C:pm25_change_1h"]) == (5, 205, 200)
    assert (row_of_b["is_A"], row_of_b["is_B"], row_of_b["is_C"]) == (0, 1, 0)
    np.testing.assert_array_equal(inputs["A"][:, 2:8], inputs["C"][:, 2:8])  # the same network block for all


def test_a_stations_windows_read_no_hour_after_their_origin():
    frames = {"A": features(0), "B": features(100)}
    spec = NetworkSpec.of(list(frames), [*COLUMNS, "pm25_change_1h"])
    plan = plan_windows(frames["A"]["split"].to_numpy(), lookback=3, horizon=2, feature_columns=COLUMNS)
    windows = station_window_set(frames, spec, plan, "test", "B")
    names = input_names(spec, COLUMNS)
    for sample, origin in enumerate(windows.origin_index):
        newest = windows.inputs[sample, -1, names.index("A:pm25_z")]
        assert newest == origin  # A's reading at the origin hour itself, nothing later
        assert windows.inputs[sample, :, names.index("pm25_z")].max() == 100 + origin
