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

import numpy as np
import pandas as pd

from tasks.core.weather import WEATHER_VARIABLES

COMPASS_POINTS = ("N", "NNE", "NE", "ENE", "E", "ESE", "SE", "SSE", "S", "SSW", "SW", "WSW", "W", "WNW", "NW", "NNW")
DIRECTION_DEGREES = {point: 22.5 * index for index, point in enumerate(COMPASS_POINTS)}  # cv: no direction
WET_MM = 0.1  # an hour with at least this much precipitation is wet; the model reads wet or dry, not the amount
# The model's weather inputs per hour: the wind as the two components of the direction it blows from, times its speed.
WEATHER_INPUTS = ("temperature", "dew_point", "pressure", "wind_speed", "wind_from_east", "wind_from_north", "wet")


def observed_weather(readings: pd.DataFrame) -> pd.DataFrame:
    """One station's canonical readings (`timestamp`, `temp`, `dewp`, `pres`, `wind_dir`, and `wind_speed` and `rain`,
    or the embassy's `wind_run` and `rain_hours`) as the layout's variables, one row per reading, `valid_at` its hour."""
    direction = readings["wind_dir"].astype("object").map(DIRECTION_DEGREES).astype("float64")
    if "wind_speed" in readings:
        speed = readings["wind_speed"].astype("float64")
    else:
        cumulated = readings["wind_run"].astype("float64")
        same_code = readings["wind_dir"].eq(readings["wind_dir"].shift()).fillna(False).to_numpy(dtype=bool)
        increase = cumulated.diff()
        speed = cumulated.where(~same_code | (increase < 0), increase)
    if "rain" in readings:
        precipitation = readings["rain"].astype("float64")
    else:
        hours_of_rain = readings["rain_hours"].astype("float64")  # 1, 2, 3 … through a rainy spell, 0 when dry
        precipitation = (hours_of_rain > 0).astype("float64").mul(WET_MM).where(hours_of_rain.notna())
    return pd.DataFrame({"valid_at": readings["timestamp"], "temperature": readings["temp"].astype("float64"),
                         "dew_point": readings["dewp"].astype("float64"), "pressure": readings["pres"].astype("float64"),
                         "wind_speed": speed, "wind_direction": direction, "precipitation": precipitation})


def weather_inputs(weather: pd.DataFrame) -> np.ndarray:
    """The model's inputs (hours, len(WEATHER_INPUTS)) from a table of the layout's variables, unscaled; NaN where a
    variable is missing. Without a direction (calm, variable) the wind's components are 0."""
    radians = np.deg2rad(weather["wind_direction"].to_numpy(dtype="float64"))
    speed = weather["wind_speed"].to_numpy(dtype="float64")
    has_direction = np.isfinite(radians)
    components = [np.where(has_direction, np.sin(radians) * speed, 0.0), np.where(has_direction, np.cos(radians) * speed, 0.0)]
    precipitation = weather["precipitation"].to_numpy(dtype="float64")
    wet = np.where(np.isfinite(precipitation), (precipitation >= WET_MM).astype("float64"), np.nan)
    return np.column_stack([*(weather[name].to_numpy(dtype="float64") for name in WEATHER_VARIABLES[:4]), *components, wet])
