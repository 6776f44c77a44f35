"""80 % prediction intervals that follow the forecast's level (split conformal, binned by the forecast).

The errors of a PM2.5 forecast grow with its level: one additive offset per lead hour held 0.98 of the
observations in the lowest fifth of the 2014 backtest's forecasts and 0.50 in the highest. So, per lead hour,
the calibration forecasts (the validation span's) are cut into up to `LEVEL_BINS` bins of equal count by their
size, and each bin gets its own residual quantiles (group-conditional split conformal). A forecast's interval
uses the quantiles of the bin its own size falls in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tasks import storage

INTERVALS_FILE = "intervals.json"
INTERVAL_COVERAGE = 0.8
LEVEL_BINS = 10
MIN_BIN_CELLS = 100  # fewer bins where the calibration span has fewer observed cells
METHOD = (f"split conformal by forecast level: per station and horizon, the residual quantiles 0.1 and 0.9 of the "
          f"LSTM's validation forecasts in up to {LEVEL_BINS} bins of equal count by the forecast's size")


@dataclass(frozen=True)
class IntervalTable:
    """Per lead hour: the forecast levels that separate its bins (ascending), and per bin the offsets added to a
    forecast for the interval's ends."""

    edges: list[list[float]]
    lower: list[list[float]]
    upper: list[list[float]]

    def bounds(self, forecast: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The interval of each forecast (`forecast`'s last axis is the lead hour), clipped at zero."""
        forecast = np.asarray(forecast, dtype="float64")
        lower, upper = np.empty_like(forecast), np.empty_like(forecast)
        for step, (edges, low, high) in enumerate(zip(self.edges, self.lower, self.upper)):
            bins = level_bin(edges, forecast[..., step])
            lower[..., step] = forecast[..., step] + np.asarray(low)[bins]
            upper[..., step] = forecast[..., step] + np.asarray(high)[bins]
        return np.clip(lower, 0, None), np.clip(upper, 0, None)

    def to_json(self) -> dict[str, Any]:
        return {"edges": self.edges, "lower": self.lower, "upper": self.upper}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IntervalTable:
        """Also reads the one offset per lead hour of models registered before the level bins."""
        if "edges" not in data:
            return cls([[] for _ in data["lower"]], [[value] for value in data["lower"]],
                       [[value] for value in data["upper"]])
        return cls(data["edges"], data["lower"], data["upper"])


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


def tables_key(tables: dict[str, IntervalTable]) -> str:
    """A short key of a model's interval tables, for the caches of what they were applied to."""
    return storage.fingerprint({station: table.to_json() for station, table in tables.items()})


def level_bin(edges: list[float], values: np.ndarray) -> np.ndarray:
    """The bin of each value: 0 below the first edge, i from edge i-1 (inclusive) up to edge i."""
    return np.searchsorted(np.asarray(edges, dtype="float64"), values, side="right")


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


def write_intervals(model_dir: Path, tables: dict[str, IntervalTable]) -> Path:
    """A model's interval tables, by station, kept beside the model (`intervals.json`)."""
    return storage.write_method_tables(model_dir / INTERVALS_FILE, METHOD,
                                       {station: table.to_json() for station, table in tables.items()})


def read_intervals(model_dir: Path) -> dict[str, IntervalTable] | None:
    """The model's interval tables by station; None where it has none, or only ones made by an earlier method
    (which a caller fits again)."""
    tables = storage.read_method_tables(model_dir / INTERVALS_FILE, METHOD)
    return None if tables is None else {station: IntervalTable.from_json(table) for station, table in tables.items()}
