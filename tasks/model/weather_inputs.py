"""The weather a model may read about the hours it forecasts, from a station's own readings (perfect prognosis: the
weather observed at the target hours stands in for a forecast of it) or from a weather forecast table, in the variables
of the `weather_forecast` layout (`tasks.core.weather`), and as the model's inputs.

The station files record the weather differently. The multi-site files give the wind's speed (m/s), its 16-point
direction and rain in mm. The embassy file gives a 4-way wind code (NE, NW, SE, and cv: calm or variable) with the
wind speed cumulated over the hours the code stays the same, and hours of rain cumulated over a rainy spell: its
speed is the hourly increase of that sum (the sum itself in the first hour of a new code), its direction the
quadrant's middle (none for cv), and an hour inside a rainy spell, whose amount it does not record, is given the wet
threshold.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from tasks.core.weather import WEATHER_VARIABLES
from tasks.model.inputs import WIND_COLUMN

COMPASS_POINTS = ("N", "NNE", "NE", "ENE", "E", "ESE", "SE", "SSE", "S", "SSW", "SW", "WSW", "W", "WNW", "NW", "NNW")
DIRECTION_DEGREES = {point: 22.5 * index for index, point in enumerate(COMPASS_POINTS)}  # cv: no direction
WET_MM = 0.1  # an hour with at least this much precipitation is wet; the model reads wet or dry, not the amount
# The model's weather inputs per hour: the wind as the two components of the direction it blows from, times its speed.
WEATHER_INPUTS = ("temperature", "dew_point", "pressure", "wind_speed", "wind_from_east", "wind_from_north", "wet")


def observed_weather(readings: pd.DataFrame) -> pd.DataFrame:
    """One station's canonical readings (`timestamp`, `temp`, `dewp`, `pres`, `wind_dir`, and `wind_speed` and `rain`,
    or the embassy's `wind_run` and `rain_hours`) as the layout's variables, one row per reading, `valid_at` its hour.
    A variable a station's layout does not record is missing (NaN) throughout."""
    missing = pd.Series(np.nan, index=readings.index)

    def column(name: str) -> pd.Series:
        return readings[name].astype("float64") if name in readings else missing

    wind_code = readings[WIND_COLUMN] if WIND_COLUMN in readings else missing
    direction = wind_code.astype("object").map(DIRECTION_DEGREES).astype("float64")
    if "wind_speed" in readings or "wind_run" not in readings:
        speed = column("wind_speed")
    else:
        cumulated = column("wind_run")
        same_code = wind_code.eq(wind_code.shift()).fillna(False).to_numpy(dtype=bool)
        increase = cumulated.diff()
        speed = cumulated.where(~same_code | (increase < 0), increase)
    if "rain" in readings or "rain_hours" not in readings:
        precipitation = column("rain")
    else:
        hours_of_rain = column("rain_hours")  # 1, 2, 3 … through a rainy spell, 0 when dry
        precipitation = (hours_of_rain > 0).astype("float64").mul(WET_MM).where(hours_of_rain.notna())
    return pd.DataFrame({"valid_at": readings["timestamp"], "temperature": column("temp"), "dew_point": column("dewp"),
                         "pressure": column("pres"), "wind_speed": speed, "wind_direction": direction,
                         "precipitation": precipitation})


def weather_inputs(weather: Mapping[str, Any]) -> np.ndarray:
    """The model's inputs (..., len(WEATHER_INPUTS)) from the layout's variables, each an array of one shape (a
    table's columns, or origins × lead hours), unscaled; NaN where a variable is missing. Without a direction (calm,
    variable) the wind's components are 0."""
    values = {name: np.asarray(weather[name], dtype="float64") for name in WEATHER_VARIABLES}
    radians, speed = np.deg2rad(values["wind_direction"]), values["wind_speed"]
    has_direction = np.isfinite(radians)
    components = [np.where(has_direction, np.sin(radians) * speed, 0.0), np.where(has_direction, np.cos(radians) * speed, 0.0)]
    precipitation = values["precipitation"]
    wet = np.where(np.isfinite(precipitation), (precipitation >= WET_MM).astype("float64"), np.nan)
    return np.stack([*(values[name] for name in WEATHER_VARIABLES[:4]), *components, wet], axis=-1)
