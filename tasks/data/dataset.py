"""The network's one validated dataset: every ingested station file in the canonical columns, checked by the
network suite per station, written as one Parquet dataset partitioned by station."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.core import storage
from tasks.core.errors import DataError
from tasks.core.home import HomeFolders
from tasks.core.records import DATASET_FILE, PARTITION_FILE, Dataset, NetworkSummary
from tasks.core.settings import SourceSettings
from tasks.core.states import finish
from tasks.data.file_layouts import FileLayout, known_layouts
from tasks.data.quarantine import quarantine, stored_file
from tasks.data.sources import IngestedFile
from tasks.data.validate import NETWORK_SUITE_FILE, validate_network, verdict_path

log = logging.getLogger(__name__)


def to_canonical(frame: pd.DataFrame, layout: FileLayout, station: str) -> pd.DataFrame:
    """A parsed file's rows in the canonical columns: station, timestamp, pm25, weather, other pollutants."""
    names = {column: canonical for column, canonical in layout.canonical_names.items() if canonical != "station"}
    table = frame[["timestamp", *names]].rename(columns=names)
    table.insert(0, "station", station)
    return table


def canonical_table(ingested: IngestedFile, layout: FileLayout) -> pd.DataFrame:
    return to_canonical(pd.read_parquet(ingested.path), layout, ingested.station)


def dataset_key(files: list[IngestedFile]) -> str:
    """The source set's fingerprint: the files' contents, whatever their order or names."""
    return storage.fingerprint("dataset", sorted(item.sha256 for item in files))


def dataset_key_of(files: list[IngestedFile], stations: list[str]) -> str:
    """The key of the dataset of `stations` from these files."""
    return storage.fingerprint(dataset_key(files), sorted(stations))


def combine_dataset(files: list[IngestedFile], stations: list[str], output_root: Path,
                    expectations_dir: Path) -> Dataset:
    """Write the kept `stations`' canonical rows as one Parquet dataset, partitioned by station, under
    `output_root/<key>/` (built in a temporary folder and renamed into place whole).

    Every station shares the hourly span from the first to the last hour of any station, so the spans of a
    run are the same hours for all. The model inputs are the canonical input columns every station has.
    """
    key = dataset_key_of(files, stations)
    destination = output_root / key
    if (destination / DATASET_FILE).exists():
        log.info("dataset cache hit: %s", destination)
        return Dataset.load(destination)
    layouts = {layout.name: layout for layout in known_layouts(expectations_dir)}
    by_station = {item.station: item for item in files if item.station in stations}
    tables = {station: canonical_table(item, layouts[item.layout]) for station, item in sorted(by_station.items())}
    used = [layouts[by_station[station].layout] for station in tables]
    inputs = [column for column in dict.fromkeys(column for layout in used for column in layout.input_columns)
              if all(column in table and table[column].notna().any() for table in tables.values())]
    winds = list(dict.fromkeys(category for layout in used for category in layout.wind_categories))
    stamps = pd.concat([table["timestamp"].dropna() for table in tables.values()])
    dataset = Dataset(path=destination, key=key, stations=list(tables), start=stamps.min().isoformat(),
                      end=stamps.max().isoformat(), input_columns=inputs, wind_categories=winds,
                      files={station: by_station[station].origin for station in tables})
    output_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=output_root))
    try:
        for station, table in tables.items():
            storage.write_parquet(staging / f"station={station}" / PARTITION_FILE, table)
        storage.write_json(staging / DATASET_FILE, dataset.to_json())
        os.replace(staging, destination)
    except OSError:
        if not (destination / DATASET_FILE).exists():
            raise
        log.info("dataset %s was written by a concurrent run", destination)  # identical content by its key
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("dataset %s: %d station(s) %s, %s to %s", key, len(tables), list(tables), dataset.start, dataset.end)
    return dataset


def read_network(dataset: Dataset) -> pd.DataFrame:
    """Every station's canonical rows, as one frame."""
    return pd.concat([pd.read_parquet(dataset.station_path(station)) for station in dataset.stations], ignore_index=True)


def check_one_file_per_station(files: list[IngestedFile]) -> None:
    """Two different files may not hold the same station: which one to believe is not ours to guess."""
    seen: dict[str, IngestedFile] = {}
    for item in files:
        other = seen.setdefault(item.station, item)
        if other is not item:
            raise DataError(f"station {item.station!r} is in two files, {other.origin} and {item.origin} "
                            "(rule: one file per station); give one of them")


class NoStationLeft(DataError):
    """Every station of the source set was left out by the network's rules."""

    def __init__(self, message: str, left_out: dict[str, str]):
        super().__init__(message)
        self.left_out = left_out


@dataclass(frozen=True)
class ValidatedDataset:
    dataset: Dataset
    summary: NetworkSummary
    cache_hit: bool = False


def build_dataset(files: list[IngestedFile], output_root: Path, expectations_dir: Path, docs_dir: Path,
                  cache_dir: Path) -> ValidatedDataset:
    """Check the files as one network (one file per station, the network suite per station) and write the kept
    stations' dataset. A passing verdict for the same files and suite is reused."""
    check_one_file_per_station(files)
    cache_hit = False
    suite_sha = storage.sha256_file(expectations_dir / NETWORK_SUITE_FILE)
    cached = cache_dir / f"network-{storage.fingerprint(dataset_key(files), suite_sha)}.json"
    if cached.exists() and (docs_dir / "index.html").exists():
        summary = NetworkSummary(**storage.read_json(cached))
        log.info("validation cache hit: the network of %d file(s) already passed its suite", len(files))
        cache_hit = (output_root / dataset_key_of(files, summary.stations) / DATASET_FILE).exists()
        for station, reason in summary.left_out.items():
            log.warning("data-quality warning: station %s is left out of this run: %s", station, reason)
    else:
        layouts = {layout.name: layout for layout in known_layouts(expectations_dir)}
        tables = {item.station: canonical_table(item, layouts[item.layout]) for item in sorted(files, key=lambda f: f.station)}
        summary = validate_network(tables, expectations_dir, docs_dir)
        if not summary.stations:
            raise NoStationLeft("{}: no station is left to forecast (rule: at least one station):\n{}\nData Docs: {}".format(
                ", ".join(item.origin for item in files),
                "\n".join(f"  - station {station}: {reason}" for station, reason in summary.left_out.items()),
                summary.docs_index), summary.left_out)
        storage.write_json(cached, summary.to_json())
    return ValidatedDataset(combine_dataset(files, summary.stations, output_root, expectations_dir), summary, cache_hit)


def quarantine_left_out(files: list[IngestedFile], left_out: dict[str, str], folders: HomeFolders,
                        sources: SourceSettings) -> None:
    """The files of stations the network's rules left out go to the quarantine, with their table and verdict."""
    suites = {layout.name: layout.suite for layout in known_layouts(sources.expectations_dir)}
    for item in files:
        if item.station in left_out and item.path.exists():
            verdict = verdict_path(item.path, sources.expectations_dir / suites[item.layout], folders.validated)
            quarantine(stored_file(folders.source_cache, item.sha256, item.origin, item.path, verdict),
                       f"{item.origin}: station {item.station} left out: {left_out[item.station]}", folders.rejected,
                       sources.rejected_max_bytes)


@task(cache_policy=NO_CACHE, name="dataset", task_run_name="dataset of the source set")
def dataset_task(files: list[IngestedFile], folders: HomeFolders, sources: SourceSettings) -> ValidatedDataset:
    """The network's dataset; the files of stations left out, or of a set refused because none is left, are
    quarantined (see tasks/data/quarantine.py)."""
    from prefect.artifacts import create_table_artifact

    try:
        validated = build_dataset(files, folders.datasets, sources.expectations_dir, folders.data_docs,
                                  folders.validated)
    except NoStationLeft as error:
        quarantine_left_out(files, error.left_out, folders, sources)
        raise DataError(f"{error}\nQuarantined under {folders.rejected} (each file and why it was refused; no run reads "
                        "them)") from None
    summary = validated.summary
    quarantine_left_out(files, summary.left_out, folders, sources)
    rows = [{"station": station, "file": validated.dataset.files[station], "verdict": "kept",
             "warnings": "; ".join(summary.warnings.get(station, []))} for station in summary.stations]
    rows += [{"station": station, "file": next(item.origin for item in files if item.station == station),
              "verdict": "left out", "warnings": reason} for station, reason in summary.left_out.items()]
    create_table_artifact(rows, key="pm25-network-quality",
                          description=f"Network data quality: {len(summary.stations)} station(s) kept, "
                                      f"{len(summary.left_out)} left out. Data Docs: {summary.docs_index}")
    return finish(validated, validated.cache_hit, "dataset")
