"""80 % prediction intervals that follow the forecast's level (split conformal, binned by the forecast).

The errors of a PM2.5 forecast grow with its level: one additive offset per lead hour held 0.98 of the
observations in the lowest fifth of the 2014 backtest's forecasts and 0.50 in the highest. So, per lead hour,
the calibration forecasts (the validation span's) are cut into up to `LEVEL_BINS` bins of equal count by their
size, and each bin gets its own residual quantiles (group-conditional split conformal). A forecast's interval
uses the quantiles of the bin its own size falls in.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tasks.core.calibration import LEVEL_BINS, IntervalTable, level_bin

INTERVAL_COVERAGE = 0.8
MIN_BIN_CELLS = 100  # fewer bins where the calibration span has fewer observed cells


def interval_score(observed: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                   coverage: float = INTERVAL_COVERAGE) -> np.ndarray:
    """Each cell's interval score (Gneiting and Raftery 2007; lower is better): the width, plus 2 / (1 - coverage)
    times the distance by which the observation falls outside the interval."""
    outside = np.clip(lower - observed, 0, None) + np.clip(observed - upper, 0, None)
    return upper - lower + 2 / (1 - coverage) * outside


def coverage_by_size(forecast: np.ndarray, inside: np.ndarray, parts: int = 5) -> list[dict[str, Any]]:
    """Coverage in each of `parts` equal-count groups of the forecasts by size, smallest first, with each group's
    range and count: whether an interval is as reliable for a polluted hour as for a clean one."""
    order = np.argsort(np.asarray(forecast), kind="stable")
    ordered, held = np.asarray(forecast)[order], np.asarray(inside)[order]
    return [{"from": float(ordered[rows[0]]), "to": float(ordered[rows[-1]]), "n": int(rows.size),
             "coverage_80": float(held[rows].mean())}
            for rows in np.array_split(np.arange(len(ordered)), parts) if rows.size]


def fit_intervals(observed: np.ndarray, forecast: np.ndarray, coverage: float = INTERVAL_COVERAGE,
                  bins: int = LEVEL_BINS) -> IntervalTable:
    """Per lead hour (columns), up to `bins` bins of equal count by the forecast's size and each bin's residual
    quantiles, so that forecast + offsets brackets `coverage` of the outcomes of forecasts of a similar size."""
    tail = (1 - coverage) / 2
    edges, lower, upper = [], [], []
    for step in range(forecast.shape[1]):
        seen = np.isfinite(observed[:, step]) & np.isfinite(forecast[:, step])
        size, residual = forecast[seen, step], observed[seen, step] - forecast[seen, step]
        if not seen.any():  # nothing observed to calibrate on: no interval
            edges.append([])
            lower.append([float("nan")])
            upper.append([float("nan")])
            continue
        count = int(np.clip(len(size) // MIN_BIN_CELLS, 1, bins))
        ordered = np.sort(size)
        cuts = [float(value) for value in np.unique(ordered[(np.arange(1, count) * len(size)) // count])
                if value > ordered[0]]  # every bin holds at least one calibration forecast
        member = level_bin(cuts, size)
        edges.append(cuts)
        lower.append([float(np.quantile(residual[member == b], tail)) for b in range(len(cuts) + 1)])
        upper.append([float(np.quantile(residual[member == b], 1 - tail)) for b in range(len(cuts) + 1)])
    return IntervalTable(edges, lower, upper)
