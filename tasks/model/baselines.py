"""The naive baselines every model is reported beside: persistence, the same hour a day before (seasonal naive) and
the training span's climatology by month and hour of day. Each reads nothing after the origin but what the
climatology fitted on the training span."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.core.hours import HOURS_PER_DAY


def persistence(series: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """The reading at the origin hour, for every horizon (NaN where the origin is unobserved)."""
    return np.repeat(series[origins][:, None], horizon, axis=1)


def seasonal_naive(series: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """The last reading at or before the same hour one day before the target hour."""
    filled = pd.Series(series).ffill().to_numpy()
    source = origins[:, None] + np.arange(1, horizon + 1)[None, :] - HOURS_PER_DAY
    return np.where(source >= 0, filled[np.clip(source, 0, None)], np.nan)


def fit_climatology(timestamps: pd.Series, series: np.ndarray, train_mask: np.ndarray) -> pd.Series:
    """Training-span mean PM2.5 by (month, hour of day)."""
    train = pd.DataFrame({"month": timestamps.dt.month, "hour": timestamps.dt.hour, "value": series})[train_mask]
    return train.groupby(["month", "hour"])["value"].mean()


def climatology(table: pd.Series, timestamps: pd.Series, origins: np.ndarray, horizon: int) -> np.ndarray:
    """The climatological mean of each target hour's month and hour of day."""
    target_rows = np.clip(origins[:, None] + np.arange(1, horizon + 1)[None, :], 0, len(timestamps) - 1)
    stamps = pd.DatetimeIndex(timestamps.to_numpy()[target_rows.ravel()])
    keys = pd.MultiIndex.from_arrays([stamps.month, stamps.hour])
    return table.reindex(keys).to_numpy().reshape(target_rows.shape)
