"""Origins of a backtest: the hours at which the replayed nightly process issues a forecast, the origins at which it
retrains, and the spans each retraining learns from.

Times are local (the data's time zone, Asia/Shanghai, which has no daylight saving). At a retrain origin R the
validation span is the `validation_days` before R, [R - validation_days, R), and training is everything before that:
the same spans as `pm25 run` when R is the first hour of its test year.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd

from tasks.core.errors import DataError

PERIOD = re.compile(r"^(\d+)([dh])$")
CLOCK_HOUR = re.compile(r"^(\d{1,2}):00$")


def parse_period(text: str) -> timedelta:
    """'28d', '7d', '24h', '1h' as a timedelta; '0' as zero (never)."""
    if text.strip() == "0":
        return timedelta(0)
    match = PERIOD.match(text.strip())
    if not match:
        raise ValueError(f"a period is a whole number of days or hours such as 28d or 1h, or 0; got {text!r}")
    amount, unit = int(match.group(1)), match.group(2)
    return timedelta(days=amount) if unit == "d" else timedelta(hours=amount)


def parse_clock_hour(text: str) -> int:
    """'02:00' as 2: forecasts are issued on the hour, as the readings are hourly."""
    match = CLOCK_HOUR.match(text.strip())
    if not match or int(match.group(1)) > 23:
        raise ValueError(f"the forecast hour is a local time on the hour, 00:00 to 23:00; got {text!r}")
    return int(match.group(1))


@dataclass(frozen=True)
class BacktestPlan:
    """Every forecast origin in order, and the origins at which a challenger is trained (a subset, the first
    origin always among them)."""

    origins: list[pd.Timestamp]
    retrain_origins: list[pd.Timestamp]

    def segments(self) -> list[list[pd.Timestamp]]:
        """The origins served by each retrain origin's champion: from that retrain origin to the next one."""
        starts = [self.origins.index(origin) for origin in self.retrain_origins] + [len(self.origins)]
        return [self.origins[first:stop] for first, stop in zip(starts, starts[1:])]

    def to_json(self) -> dict:
        return {"origins": [origin.isoformat() for origin in self.origins],
                "retrain_origins": [origin.isoformat() for origin in self.retrain_origins]}

    @classmethod
    def from_json(cls, payload: dict) -> BacktestPlan:
        return cls([pd.Timestamp(text) for text in payload["origins"]],
                   [pd.Timestamp(text) for text in payload["retrain_origins"]])


def forecast_origins(start: date, end: date, forecast_hour: int, every: timedelta, timezone: str) -> list[pd.Timestamp]:
    """The local hours from `start` 00:00 to `end` 23:00 that lie a whole number of `every` steps from `start` at
    `forecast_hour`: daily at that hour for 24h, every hour for 1h."""
    if every <= timedelta(0) or every % timedelta(hours=1):
        raise ValueError(f"origins are a whole number of hours apart; got {every}")
    if end < start:
        raise ValueError(f"the backtest ends ({end}) before it starts ({start})")
    first_hour = pd.Timestamp(start, tz=timezone)
    anchor = first_hour + pd.Timedelta(hours=forecast_hour)
    step = pd.Timedelta(every)
    first = anchor - step * ((anchor - first_hour) // step)
    last = pd.Timestamp(end, tz=timezone) + pd.Timedelta(hours=23)
    return list(pd.date_range(first, last, freq=step))


def retrain_origins(origins: list[pd.Timestamp], retrain_every: timedelta) -> list[pd.Timestamp]:
    """The first origin, then each first origin at least `retrain_every` after the previous retrain (never again
    for a zero period)."""
    chosen = [origins[0]]
    if retrain_every > timedelta(0):
        for origin in origins[1:]:
            if origin - chosen[-1] >= retrain_every:
                chosen.append(origin)
    return chosen


def plan_backtest(start: date, end: date, forecast_at: str, every: str, retrain_every: str,
                  timezone: str) -> BacktestPlan:
    origins = forecast_origins(start, end, parse_clock_hour(forecast_at), parse_period(every), timezone)
    return BacktestPlan(origins, retrain_origins(origins, parse_period(retrain_every)))


def default_dates(data_end: pd.Timestamp, days: int = 365) -> tuple[date, date]:
    """Without dates, a backtest covers the data's last `days` days."""
    last = (data_end - pd.Timedelta(hours=23)).date() if data_end.hour < 23 else data_end.date()
    return last - timedelta(days=days - 1), last


def check_within_data(plan: BacktestPlan, data_start: pd.Timestamp, data_end: pd.Timestamp,
                      validation_days: int, min_train_days: int) -> None:
    """Refuse origins after the data's last hour, or a first retrain with too little history for its spans."""
    if plan.origins[0] > data_end:
        raise DataError(f"the backtest's first origin {plan.origins[0]} is after the data's last hour {data_end} "
                        "(rule: origins within the data)")
    needed = plan.retrain_origins[0] - pd.Timedelta(days=validation_days + min_train_days)
    if needed < data_start:
        raise DataError(f"the first retrain origin {plan.retrain_origins[0]} needs data from {needed} "
                        f"({min_train_days} training days and {validation_days} validation days before it); the data "
                        f"start at {data_start} (rule: train/validation spans)")
