"""Observed weather as the layout's variables, from both kinds of station file, and as the model's inputs."""

import numpy as np
import pandas as pd
import pytest

from tasks.model.weather_inputs import WEATHER_INPUTS, WET_MM, observed_weather, weather_inputs

HOURS = pd.date_range("2014-01-01", periods=5, freq="h", tz="Asia/Shanghai")


def test_the_embassys_cumulated_wind_and_rain_become_hourly_speed_direction_and_wet_hours():
    readings = pd.DataFrame({"timestamp": HOURS, "temp": [1.0] * 5, "dewp": [-5.0] * 5, "pres": [1020.0] * 5,
                             "wind_dir": pd.array(["NW", "NW", "NW", "cv", "SE"], dtype="string[pyarrow]"), "wind_run": [1.79, 4.92, 8.05, 0.89, 1.79],
                             "snow_hours": [0.0] * 5, "rain_hours": [0.0, 1.0, 2.0, 0.0, np.nan]})
    weather = observed_weather(readings)
    np.testing.assert_allclose(weather["wind_speed"], [1.79, 3.13, 3.13, 0.89, 1.79])
    np.testing.assert_array_equal(weather["wind_direction"], [315.0, 315.0, 315.0, np.nan, 135.0])
    np.testing.assert_array_equal(weather["precipitation"], [0.0, WET_MM, WET_MM, 0.0, np.nan])
    assert weather["valid_at"].equals(readings["timestamp"])


def test_the_multisite_files_speed_direction_and_rain_are_taken_as_they_are():
    readings = pd.DataFrame({"timestamp": HOURS, "temp": [1.0] * 5, "dewp": [-5.0] * 5, "pres": [1020.0] * 5,
                             "wind_dir": ["N", "E", "SSW", None, "W"], "wind_speed": [1.0, 2.0, 3.0, 0.0, 4.0],
                             "rain": [0.0, 0.0, 0.6, 0.05, 0.0]})
    weather = observed_weather(readings)
    np.testing.assert_array_equal(weather["wind_direction"], [0.0, 90.0, 202.5, np.nan, 270.0])
    np.testing.assert_array_equal(weather["precipitation"], readings["rain"])
    inputs = weather_inputs(weather)
    assert inputs.shape == (5, len(WEATHER_INPUTS))
    east, north = WEATHER_INPUTS.index("wind_from_east"), WEATHER_INPUTS.index("wind_from_north")
    np.testing.assert_allclose(inputs[:, east], [0.0, 2.0, 3 * np.sin(np.deg2rad(202.5)), 0.0, -4.0], atol=1e-12)
    np.testing.assert_allclose(inputs[:, north], [1.0, 0.0, 3 * np.cos(np.deg2rad(202.5)), 0.0, 0.0], atol=1e-12)
    np.testing.assert_array_equal(inputs[:, WEATHER_INPUTS.index("wet")], [0, 0, 1, 0, 0])


@pytest.mark.parametrize("missing", ["temperature", "precipitation"])
def test_a_missing_value_stays_missing(missing):
    weather = pd.DataFrame({"temperature": [1.0], "dew_point": [0.0], "pressure": [1000.0], "wind_speed": [1.0],
                            "wind_direction": [90.0], "precipitation": [0.0]})
    weather[missing] = np.nan
    inputs = weather_inputs(weather)
    assert np.isnan(inputs[0, WEATHER_INPUTS.index("wet" if missing == "precipitation" else missing)])
    assert np.isfinite(inputs).sum() == len(WEATHER_INPUTS) - 1
