"""Weather forecasts as every stage reads them: the variables of the `weather_forecast` layout, and which issue a
forecast made at an origin may read (the newest issued at or before it, never a later one)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tasks.core import storage

# The layout's variables, in its units: °C, °C, hPa, m/s, degrees the wind blows from, mm in the hour.
WEATHER_VARIABLES = ("temperature", "dew_point", "pressure", "wind_speed", "wind_direction", "precipitation")
WEATHER_COLUMNS = ("station", "issued_at", "valid_at", *WEATHER_VARIABLES)

# What a backtest's --weather may name beside forecast files: the station files' own weather at the target hours
# (an upper bound), or that weather with the noisy track's errors.
PERFECT_WEATHER, NOISY_WEATHER = "perfect", "noisy"
ISSUED_WEATHER = "issued"  # a backtest fed forecast files

# The weather model's forecasts, by what they are fed (tasks/model/weather_model.py): the weather observed at the
# target hours (an upper bound, never a forecast skill), that weather with forecast-like errors, a forecast as issued.
PERFECT_TRACK, NOISY_TRACK, ISSUED_TRACK = "lstm_wx_perfect", "lstm_wx_noisy", "lstm_wx"
WEATHER_TRACKS = (PERFECT_TRACK, NOISY_TRACK, ISSUED_TRACK)
ISSUED_IN_FULL = "lstm_wx_issued"  # a span forecasts' column: whether `lstm_wx` had a forecast of every target hour
TRACK_LABELS = {PERFECT_TRACK: "upper bound: fed the weather observed at the target hours, not a forecast skill",
                NOISY_TRACK: "fed the observed weather with forecast-like errors (docs/weather.md#the-error-model)",
                ISSUED_TRACK: "fed a weather forecast as issued"}


def newest_issues(forecasts: pd.DataFrame, origin: pd.Timestamp) -> pd.DataFrame:
    """For each station and valid hour, the row of the newest issue with `issued_at <= origin`; rows issued after the
    origin are never read, however new. Sorted by station and valid hour; empty when nothing was issued by then."""
    known = forecasts[forecasts["issued_at"] <= origin]
    newest = known.sort_values("issued_at", kind="stable").drop_duplicates(["station", "valid_at"], keep="last")
    return newest.sort_values(["station", "valid_at"], kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class WeatherFeed:
    """The weather forecasts a forecast of the next hours may read: the stored table (tasks/data/weather.py), or why
    there is none (the feed failed), and how old its newest issue may be at the origin."""

    table_path: Path | None
    max_age_hours: float
    failure: str | None = None

    @property
    def key(self) -> str:
        return storage.fingerprint(self.table_path and storage.sha256_file(self.table_path), self.max_age_hours,
                                   self.failure)


@dataclass(frozen=True)
class ReplayWeather:
    """What a backtest feeds the weather model of each night: the weather observed at the target hours (`perfect`,
    read from the hours after each origin: an upper bound, outside the no-peeking rule by design), that weather with
    forecast-like errors drawn from `seed` (`noisy`), or stored forecasts as issued (`issued`, `table_path`)."""

    mode: str
    seed: int
    table_path: Path | None = None

    @property
    def key(self) -> str:
        return storage.fingerprint(self.mode, self.seed, self.table_path and storage.sha256_file(self.table_path))

    @property
    def label(self) -> str:
        return {PERFECT_WEATHER: TRACK_LABELS[PERFECT_TRACK], NOISY_WEATHER: TRACK_LABELS[NOISY_TRACK]}.get(
            self.mode, TRACK_LABELS[ISSUED_TRACK])
