"""The error model of the `lstm_wx_noisy` track: what a real weather forecast would get wrong, drawn (seeded) onto
the weather observed at the target hours, so the weather model is scored on forecast-like weather rather than on
the truth.

Each variable's error is a first-order autoregressive series over the lead hours (an error carries on from one hour
to the next, as a forecast's misplaced front does), Gaussian, with a root-mean-square size that grows linearly from
half the day-ahead size at 1 h to the full size at 24 h (and on beyond). Wind direction errors apply where the wind
is above 2 m/s (ECMWF verifies direction only above 3 m/s); a calm hour keeps no direction. Wet or dry is flipped in
a share of hours growing the same way, where an autoregressive series like the others falls below that share's
quantile: a forecast that mistimes a rain is wrong for several hours running, not in scattered single hours. The sizes
and their sources: docs/weather.md#the-error-model.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from statistics import NormalDist

import numpy as np

from tasks.model.weather_inputs import WET_MM

# The smallest errors a day (24 h) ahead the track may assume (root-mean-square, in the layout's units: °C, °C, hPa,
# m/s, degrees; and the share of hours whose wet or dry is wrong): at or above the published errors of operational
# forecasts near the surface (docs/weather.md#the-error-model).
MINIMUM_DAY_AHEAD_ERROR = {"temperature": 2.0, "dew_point": 2.5, "pressure": 1.5, "wind_speed": 1.5,
                           "wind_direction": 40.0}
MINIMUM_DAY_AHEAD_WET_FLIPS = 0.20
# The sizes drawn: 5 % above those minimums, so that no draw's sampling error takes a measured size below them.
MARGIN = 1.05
DAY_AHEAD_ERROR = {name: size * MARGIN for name, size in MINIMUM_DAY_AHEAD_ERROR.items()}
DAY_AHEAD_WET_FLIPS = MINIMUM_DAY_AHEAD_WET_FLIPS * MARGIN
FIRST_HOUR_SHARE = 0.5  # the errors at 1 h ahead, as a share of the day-ahead ones
LEAD_CORRELATION = 0.9  # correlation of a variable's error from one lead hour to the next
DIRECTION_MIN_SPEED = 2.0  # m/s: below it the direction of the observed wind is left as it is
# Wind speed errors are drawn larger than DAY_AHEAD_ERROR, since a speed cannot fall below 0: clipped at 0, the
# drawn errors of light winds shrink, and this factor restores the root-mean-square size (measured in docs/weather.md).
SPEED_CLIP_ALLOWANCE = 1.25


def error_growth(horizon: int) -> np.ndarray:
    """Each lead hour's error as a share of the day-ahead error: FIRST_HOUR_SHARE at 1 h, 1 at 24 h, linear."""
    leads = np.arange(1, horizon + 1, dtype="float64")
    return FIRST_HOUR_SHARE + (1 - FIRST_HOUR_SHARE) * (leads - 1) / 23


def correlated_normals(rng: np.random.Generator, samples: int, horizon: int) -> np.ndarray:
    """Standard normal draws (samples × horizon), each row autocorrelated LEAD_CORRELATION from one hour to the next."""
    shocks = rng.standard_normal((samples, horizon))
    series = np.empty_like(shocks)
    series[:, 0] = shocks[:, 0]
    innovation = np.sqrt(1 - LEAD_CORRELATION**2)
    for lead in range(1, horizon):
        series[:, lead] = LEAD_CORRELATION * series[:, lead - 1] + innovation * shocks[:, lead]
    return series


def error_stream(seed: int, *names: str) -> np.random.Generator:
    """A generator for one draw of errors: the run's seed and names (a station, a span), so reruns draw the same."""
    return np.random.default_rng([seed, *(zlib.crc32(name.encode()) for name in names)])


def noisy_weather(observed: Mapping[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The observed weather at the target hours (each variable an origins × lead hours array) with forecast-like
    errors drawn onto it; missing values stay missing."""
    samples, horizon = np.shape(observed["temperature"])
    size = error_growth(horizon)[None, :]
    noisy = {}
    for name in ("temperature", "dew_point", "pressure"):
        noisy[name] = observed[name] + correlated_normals(rng, samples, horizon) * DAY_AHEAD_ERROR[name] * size
    speed_error = correlated_normals(rng, samples, horizon) * DAY_AHEAD_ERROR["wind_speed"] * SPEED_CLIP_ALLOWANCE * size
    noisy["wind_speed"] = np.clip(observed["wind_speed"] + speed_error, 0.0, None)
    turned = observed["wind_direction"] + correlated_normals(rng, samples, horizon) * DAY_AHEAD_ERROR["wind_direction"] * size
    windy = np.nan_to_num(observed["wind_speed"]) > DIRECTION_MIN_SPEED
    noisy["wind_direction"] = np.where(windy, np.mod(turned, 360.0), observed["wind_direction"])
    flip_below = np.array([NormalDist().inv_cdf(share) for share in DAY_AHEAD_WET_FLIPS * size[0]])
    flipped = correlated_normals(rng, samples, horizon) < flip_below
    wet = observed["precipitation"] >= WET_MM
    noisy["precipitation"] = np.where(flipped & np.isfinite(observed["precipitation"]),
                                      np.where(wet, 0.0, WET_MM), observed["precipitation"])
    return noisy
