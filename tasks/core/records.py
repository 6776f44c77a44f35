"""The records that stages hand each other through the flows: the validated dataset and the network suite's
verdict on it, a registered model version, a backtest's promotion decisions and its issued forecasts. Each is plain
data with the few reads that belong to it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.core import storage

DATASET_FILE = "dataset.json"
PARTITION_FILE = "part-0.parquet"


@dataclass(frozen=True)
class Dataset:
    """The canonical table of every station, partitioned by station, and what went into it."""

    path: Path
    key: str
    stations: list[str]
    start: str
    end: str
    input_columns: list[str]
    wind_categories: list[str]
    files: dict[str, str] = field(default_factory=dict)  # station → origin

    def station_path(self, station: str) -> Path:
        return self.path / f"station={station}" / PARTITION_FILE

    def readings(self, station: str, until: pd.Timestamp | None = None) -> pd.DataFrame:
        """A station's canonical rows, or those recorded before `until`: all that existed at that hour."""
        frame = pd.read_parquet(self.station_path(station))
        return frame if until is None else frame[frame["timestamp"] < until].reset_index(drop=True)

    def content_key(self, stations: list[str], until: pd.Timestamp) -> str:
        """A fingerprint of the given stations' readings before `until`: a file cut after `until`, or one with
        more recent hours appended, has the same key there, so what was computed from it is reused."""
        return self.content_keys(stations, [until])[0]

    def content_keys(self, stations: list[str], untils: list[pd.Timestamp]) -> list[str]:
        """`content_key` at each of `untils`, reading and hashing each station's rows once."""
        order = sorted(stations)
        digests = [self._digests_before(station, untils) for station in order]
        return [storage.fingerprint("readings", order, list(at_until)) for at_until in zip(*digests)]

    def _digests_before(self, station: str, untils: list[pd.Timestamp]) -> list[str]:
        """The digest of the station's rows recorded before each of `untils` (a row's hash does not depend on the
        rows beside it, so each digest is that of `readings(station, until)`)."""
        frame = self.readings(station)
        row_hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
        return [storage.sha256_bytes(row_hashes[(frame["timestamp"] < until).to_numpy()].tobytes()) for until in untils]

    def to_json(self) -> dict:
        return {"key": self.key, "stations": self.stations, "start": self.start, "end": self.end,
                "input_columns": self.input_columns, "wind_categories": self.wind_categories, "files": self.files}

    @classmethod
    def load(cls, path: Path) -> Dataset:
        return cls(path=Path(path), **storage.read_json(Path(path) / DATASET_FILE))


@dataclass(frozen=True)
class ModelVersion:
    """One registered model: where it lives, what made it, how it scored, and the promotion decision."""

    version: int
    model_dir: str  # folder name under models/
    model_sha256: str
    registered_at: str
    run_id: str
    source_sha256: str
    code_version: str
    settings: dict[str, Any]
    test_rmse: dict[str, float]  # the run's own test span, pooled over the stations, by reported horizon
    challenge: dict[str, Any]  # the champion comparison that decided promotion
    stations: list[str] = field(default_factory=list)  # empty in versions registered before the network
    # Station → "lower" / "upper" offsets per horizon, in versions registered before the model folder kept its
    # interval tables (tasks.scoring.intervals); empty since.
    interval_offsets: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """A retrain origin's challenger, the promotion decision, and the champion that serves the nights after it."""

    origin: str
    version: int
    model_dir: str
    promoted: bool
    reason: str
    challenger_score: float | None
    champion_score: float | None
    champion_version: int
    champion_dir: str


@dataclass(frozen=True)
class NetworkSummary:
    """The network suite's verdict per station: the stations kept, and those left out with the rule that failed."""

    stations: list[str]
    left_out: dict[str, str]
    warnings: dict[str, list[str]]
    evaluated: int
    docs_index: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Segment:
    """The forecasts one champion issued on the consecutive nights it served (a backtest's), and its version."""

    path: Path
    version: int
    origins: int
    cache_hit: bool = False


# A backtest's long table of issued forecasts (`forecasts.parquet`), one row per station, origin and lead hour.
ISSUED_FORECAST_COLUMNS = ["station", "origin", "target_time", "lead_hours", "forecast", "lower_80", "upper_80",
                           "persistence", "observed", "model_version", "category_24h", "model"]


def verified_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """The issued forecasts a backtest is verified on: the target hour observed and the origin's reading there, so
    the model and persistence are judged on the same cells."""
    return frame[frame["observed"].notna() & frame["persistence"].notna()]


# A model's forecasts of a span, per station: origin rows, observed targets, forecasts (µg/m³) and whether each
# origin's reading was observed (`tasks.model.predict` makes them, a promotion scores them).
SpanForecast = dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
