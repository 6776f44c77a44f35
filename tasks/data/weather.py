"""Weather forecast files: parse a `weather_forecast` CSV (expectations/layouts.json), check it with its Great
Expectations suite and its stations against the source set's, and store it as Parquet (`data/weather/<sha256>.parquet`,
timestamps in UTC). A refused file names its file, column, rows and rule; nothing already stored changes."""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.core import storage
from tasks.core.errors import DataError
from tasks.core.home import HomeFolders
from tasks.core.settings import SourceSettings
from tasks.core.states import finish
from tasks.core.weather import WEATHER_COLUMNS, WEATHER_VARIABLES
from tasks.data.ingest import EXAMPLE_ROWS, check_row_widths, decode_text, example_rows, numeric_cells, read_header
from tasks.data.quarantine import refused, stored_file
from tasks.data.sources import FetchedSource
from tasks.data.validate import ROW_ID_COLUMN, ValidationSummary, run_checkpoint

LAYOUTS_KEY, LAYOUT_NAME = "weather_forecasts", "weather_forecast"
TIMESTAMP_COLUMNS = ("issued_at", "valid_at")
WITH_UTC_OFFSET = re.compile(r"(?:Z|[+-]\d{2}(?::?\d{2})?)$")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeatherFile:
    """One stored weather forecast file: its table (UTC timestamps), where it came from, its stations and issues."""

    path: Path
    origin: str
    sha256: str
    stations: tuple[str, ...]
    newest_issue: str
    cache_hit: bool = False


def weather_suite_path(expectations_dir: Path) -> Path:
    layout = storage.read_json(expectations_dir / "layouts.json")[LAYOUTS_KEY][LAYOUT_NAME]
    return expectations_dir / layout["suite"]


def parse_weather_csv(data: bytes, name: str) -> pd.DataFrame:
    """The file's rows with UTC timestamps and float values (empty cells NaN) and `source_row`; refuses a header other
    than the layout's columns, a timestamp without its UTC offset or unreadable, and text in a number column."""
    text = decode_text(data, name)
    header = read_header(text)
    missing = [column for column in WEATHER_COLUMNS if column not in header]
    extra = [column for column in header if column not in WEATHER_COLUMNS]
    if missing or extra:
        raise DataError(f"{name}: the header must be exactly {list(WEATHER_COLUMNS)} (rule: columns of layout "
                        f"{LAYOUT_NAME}); missing {missing}, unexpected {extra}")
    check_row_widths(text, name)
    cells = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skipinitialspace=True)
    cells = cells.rename(columns=str.strip)[list(WEATHER_COLUMNS)].apply(lambda column: column.str.strip())
    if cells.empty:
        raise DataError(f"{name}: the header has no data rows")
    frame = pd.DataFrame({"source_row": pd.RangeIndex(1, len(cells) + 1), "station": cells["station"].astype("string")})
    for column in TIMESTAMP_COLUMNS:
        no_offset = ~cells[column].str.contains(WITH_UTC_OFFSET)
        if no_offset.any():
            raise DataError(f"{name}: column {column!r} has timestamps without a UTC offset (rule: ISO 8601 with its "
                            f"UTC offset) in rows {example_rows(no_offset)}, e.g. {cells[column][no_offset].head(3).tolist()}")
        stamps = pd.to_datetime(cells[column], format="ISO8601", utc=True, errors="coerce")
        if stamps.isna().any():
            raise DataError(f"{name}: column {column!r} holds unreadable timestamps (rule: ISO 8601 with its UTC "
                            f"offset) in rows {example_rows(stamps.isna())}")
        frame[column] = stamps
    for column in WEATHER_VARIABLES:
        frame[column] = numeric_cells(cells[column], name).astype("float64")
    return frame


def check_stations(frame: pd.DataFrame, stations: list[str], name: str) -> None:
    """Every row's station is one of the source set's: a forecast for a station pm25 has no readings of is refused."""
    unknown = ~frame["station"].isin(stations)
    if unknown.any():
        raise DataError(f"{name}: column 'station' names station(s) {sorted(set(frame['station'][unknown]))} that the "
                        f"source set does not hold (rule: known stations: {sorted(stations)}) in rows "
                        f"{frame['source_row'][unknown].head(EXAMPLE_ROWS).tolist()}")


def validate_weather(frame: pd.DataFrame, origin: str, suite_path: Path, docs_dir: Path) -> ValidationSummary:
    """The suite's verdict on the parsed table, with its Data Docs in `docs_dir`."""
    outcomes = run_checkpoint(frame, storage.read_json(suite_path), docs_dir)
    failed = [outcome for outcome in outcomes if not outcome.success]
    critical = [outcome for outcome in failed if outcome.severity == "critical"]
    summary = ValidationSummary(passed=not critical, source=origin, data_path="", rows=len(frame),
                                evaluated=len(outcomes), failed_critical=critical,
                                warnings=[outcome for outcome in failed if outcome.severity != "critical"],
                                docs_index=str(docs_dir / "index.html"))
    storage.write_json(docs_dir / "summary.json", summary.to_json())
    return summary


def store_weather(fetched: FetchedSource, weather_dir: Path, stations: list[str], expectations_dir: Path,
                  docs_dir: Path) -> WeatherFile:
    """Parse, check and store one fetched weather forecast file; the same bytes already stored are a cache hit (their
    stations are checked again: another source set may hold other stations)."""
    destination = weather_dir / f"{fetched.sha256}.parquet"
    if destination.exists():
        metadata = storage.read_parquet_metadata(destination)
        check_stations(pd.read_parquet(destination, columns=["station", ROW_ID_COLUMN]), stations, fetched.origin)
        log.info("weather cache hit: %s already stored as %s", fetched.origin, destination)
        return WeatherFile(destination, fetched.origin, fetched.sha256, tuple(metadata["stations"].split(",")),
                           metadata["newest_issue"], cache_hit=True)
    frame = parse_weather_csv(fetched.path.read_bytes(), fetched.origin)
    check_stations(frame, stations, fetched.origin)
    summary = validate_weather(frame, fetched.origin, weather_suite_path(expectations_dir),
                               docs_dir / "weather" / fetched.sha256[:16])
    for warning in summary.warnings:
        log.warning("weather data-quality warning: %s", warning.describe())
    if not summary.passed:
        raise DataError(summary.error_message())
    return write_weather(frame, destination, fetched.origin, fetched.sha256)


def write_weather(frame: pd.DataFrame, destination: Path, origin: str, sha256: str) -> WeatherFile:
    """Store a checked weather table atomically, with its stations and newest issue in the file's metadata."""
    stations = tuple(sorted(frame["station"].unique()))
    newest = frame["issued_at"].max().isoformat()
    storage.write_parquet(destination, frame, {"source": origin, "source_sha256": sha256, "stations": ",".join(stations),
                                               "newest_issue": newest})
    log.info("stored %d weather forecast rows for %d station(s), newest issue %s, from %s", len(frame), len(stations),
             newest, origin)
    return WeatherFile(destination, origin, sha256, stations, newest)


def read_weather(files: list[WeatherFile]) -> pd.DataFrame:
    """Every stored file's rows as one table; a station, issue and valid hour that two files give different values
    for is refused, naming both files."""
    tables = [pd.read_parquet(file.path).assign(source=file.origin) for file in files]
    combined = pd.concat(tables, ignore_index=True).drop_duplicates([*WEATHER_COLUMNS])
    clash = combined.duplicated(["station", "issued_at", "valid_at"], keep=False)
    if clash.any():
        first = combined[clash].iloc[0]
        sources = sorted(set(combined[clash & (combined["station"] == first["station"]) & (combined["issued_at"] ==
                                                first["issued_at"]) & (combined["valid_at"] == first["valid_at"])]["source"]))
        raise DataError(f"{', '.join(sources)}: {int(clash.sum())} row(s) give different values for one station, issue "
                        f"and valid hour (rule: one forecast per station, issue and valid hour), e.g. station "
                        f"{first['station']} issued {first['issued_at'].isoformat()} for {first['valid_at'].isoformat()}")
    return combined.drop(columns=["source", ROW_ID_COLUMN]).reset_index(drop=True)


def combine_weather(files: list[WeatherFile], weather_dir: Path) -> Path:
    """The stored files' rows as one table (`read_weather`: refusing files that disagree), kept once per set of
    files; the one table the models are fed."""
    destination = weather_dir / f"combined-{storage.fingerprint(sorted(file.sha256 for file in files))}.parquet"
    if not destination.exists():
        storage.write_parquet(destination, read_weather(files), {"sources": ",".join(file.origin for file in files)})
    return destination


@task(cache_policy=NO_CACHE, name="combine-weather", task_run_name="combine the weather forecast files")
def combine_weather_task(files: list[WeatherFile], folders: HomeFolders) -> Path:
    return combine_weather(files, folders.weather)


@task(cache_policy=NO_CACHE, name="store-weather", task_run_name="store weather {fetched.file_name}")
def store_weather_task(fetched: FetchedSource, stations: list[str], folders: HomeFolders,
                       sources: SourceSettings) -> WeatherFile:
    """A refused file is quarantined like a refused station file."""
    try:
        stored = store_weather(fetched, folders.weather, stations, sources.expectations_dir, folders.data_docs)
    except DataError as error:
        raise refused(error, stored_file(fetched.path.parent, fetched.sha256, fetched.origin), folders.rejected,
                      sources.rejected_max_bytes) from None
    return finish(stored, stored.cache_hit, "store weather")
