"""Ingest: parse each fetched file by its declared layout (recognised from its header) into a typed Parquet table in
the file's own columns, with its station and local hourly timestamps."""

from __future__ import annotations

import csv
import io
import logging
import re
from pathlib import Path

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.core import storage
from tasks.core.errors import DataError
from tasks.core.home import HomeFolders
from tasks.core.hours import TIMEZONE
from tasks.core.settings import PROJECT_ROOT, SourceSettings
from tasks.core.states import finish
from tasks.data.file_layouts import CALENDAR_COLUMNS, FileLayout, closest_layout, recognise_layout
from tasks.data.quarantine import refused, stored_file
from tasks.data.sources import FetchedSource, IngestedFile
from tasks.data.validate import report_structure_failure

EXAMPLE_ROWS = 5
OTHER_DELIMITERS = (";", "\t", "|")
STATION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}")
EXPECTATIONS_DIR = PROJECT_ROOT / "expectations"

log = logging.getLogger(__name__)


MISSING_CELLS = ("", "NA", "NaN", "nan")  # a cell that holds one of these (once stripped) has no value


def example_rows(mask: pd.Series) -> list[int]:
    """Data-row numbers (1 = first row after the header) of the first few rows where `mask` holds."""
    return [int(row) + 1 for row in mask.index[mask.to_numpy()][:EXAMPLE_ROWS]]


def numeric_cells(cells: pd.Series, name: str) -> pd.Series:
    """A column's stripped text cells as numbers, missing cells NaN; refuses text, naming the column, the first rows
    and examples."""
    missing = cells.isin(MISSING_CELLS)
    values = pd.to_numeric(cells.mask(missing), errors="coerce")
    bad = values.isna() & ~missing
    if bad.any():
        raise DataError(f"{name}: column {cells.name!r} holds non-numeric text (rule: numeric column) in rows "
                        f"{example_rows(bad)}, e.g. {cells[bad].head(EXAMPLE_ROWS).tolist()}")
    return values


def check_row_widths(text: str, name: str) -> None:
    """Every data row has as many fields as the header; pandas would quietly pad a short (truncated) row."""
    widths = [len(fields) for fields in csv.reader(io.StringIO(text)) if fields]
    odd = [row for row, width in enumerate(widths[1:], start=1) if width != widths[0]]
    if odd:
        raise DataError(
            f"{name}: row(s) {odd[:EXAMPLE_ROWS]} have {widths[odd[0]]} field(s) where the header has {widths[0]} "
            "(rule: complete rows; a truncated file?)"
        )


def decode_text(data: bytes, name: str) -> str:
    if not data.strip():
        raise DataError(f"{name}: the file is empty")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(f"{name}: not UTF-8 text (byte {error.start}: {data[error.start:error.start + 4]!r})") from error


def read_header(text: str) -> list[str]:
    return [column.strip() for column in next(csv.reader(io.StringIO(text)), [])]


def parse_csv(data: bytes, name: str, expectations_dir: Path = EXPECTATIONS_DIR) -> pd.DataFrame:
    """Parse the CSV bytes, in whichever known layout its header shows, into a typed frame in the file's own
    columns with a tz-aware hourly `timestamp` and `source_row`, sorted by time.

    Structure is checked here (text, delimiter, layout, numeric cells); value rules are left to the layout's
    Great Expectations suite, so that its Data Docs show them. Invalid dates become NaT for the suite to flag.
    """
    text = decode_text(data, name)
    header = read_header(text)
    if len(header) == 1:
        delimiter = next((delimiter for delimiter in OTHER_DELIMITERS if delimiter in header[0]), None)
        if delimiter:
            raise DataError(f"{name}: required columns missing (rule: required columns); found {header}; the header "
                            f"looks delimited by {delimiter!r}, not ','")
    layout = recognise_layout(header, name, expectations_dir)
    try:
        raw = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.ParserError as error:
        raise DataError(f"{name}: not a well-formed CSV: {error}") from error
    raw.columns = [str(column).strip() for column in raw.columns]
    extra = [column for column in raw.columns if column not in layout.columns]
    if extra:
        log.warning("%s: ignoring extra column(s) %s", name, extra)
    if raw.empty:
        raise DataError(f"{name}: the header has no data rows")

    check_row_widths(text, name)
    cells = raw[list(layout.columns)].apply(lambda column: column.str.strip())
    frame = pd.DataFrame(index=cells.index)
    for column in layout.of_type("integer", "float"):
        values = numeric_cells(cells[column], name)
        if layout.columns[column]["type"] == "integer":
            fractional = values.notna() & (values != values.round())
            if fractional.any():
                raise DataError(
                    f"{name}: column {column!r} holds non-integer values (rule: integer column) in rows "
                    f"{example_rows(fractional)}"
                )
            frame[column] = values.astype("Int64")
        else:
            frame[column] = values.astype("float64")
    for column in layout.of_type("category", "text"):
        frame[column] = cells[column].mask(cells[column].isin(MISSING_CELLS)).astype("string")
    frame = frame[list(layout.columns)]
    frame.insert(0, "timestamp", build_timestamps(frame))
    frame.insert(1, "source_row", pd.Series(range(1, len(frame) + 1), index=frame.index, dtype="int64"))
    return frame.sort_values("timestamp", kind="stable", na_position="last").reset_index(drop=True)


def file_station(frame: pd.DataFrame, layout: FileLayout, name: str) -> str:
    """The station a parsed file holds: the layout's own, or its station column's, which must agree with a
    station named in the file's name."""
    if layout.station_name:
        return layout.station_name
    values = frame[layout.station_column]
    named = values.dropna()
    if named.empty:
        raise DataError(f"{name}: column {layout.station_column!r} names no station (rule: station named)")
    station = str(named.mode().iloc[0])
    if not STATION_NAME.fullmatch(station):
        raise DataError(f"{name}: column {layout.station_column!r} names station {station!r}, which is not a plain name "
                        "(rule: station names are letters, digits, spaces, '.', '_' and '-'; they name folders)")
    expected = layout.station_in_file_name(name)
    if expected is not None and expected != station:
        raise DataError(f"{name}: column {layout.station_column!r} names station {station!r}, but the file name "
                        f"names {expected!r} (rule: station matches file name), e.g. rows "
                        f"{frame['source_row'][values == station].head(EXAMPLE_ROWS).tolist()}")
    return station


def build_timestamps(frame: pd.DataFrame) -> pd.Series:
    """Local Beijing time from year/month/day/hour; impossible dates or hours become NaT."""
    parts = frame[list(CALENDAR_COLUMNS)].astype("float64")
    valid_hour = parts["hour"].between(0, 23)
    dates = pd.to_datetime(
        {"year": parts["year"], "month": parts["month"], "day": parts["day"]}, errors="coerce"
    )
    stamps = dates + pd.to_timedelta(parts["hour"].where(valid_hour), unit="h")
    return stamps.dt.tz_localize(TIMEZONE)


def text_table(data: bytes) -> pd.DataFrame:
    """The file's cells as text, one column per header field, each row padded or cut to the header's width,
    with `source_row` and `field_count_vs_header`; no columns at all when the bytes are not UTF-8 text."""
    try:
        rows = [fields for fields in csv.reader(io.StringIO(data.decode("utf-8-sig"))) if fields]
    except UnicodeDecodeError:
        rows = []
    if not rows:
        return pd.DataFrame()
    header = [name.strip() for name in rows[0]]
    table = pd.DataFrame([(fields + [""] * len(header))[: len(header)] for fields in rows[1:]], columns=header, dtype=str)
    table["source_row"] = range(1, len(table) + 1)
    table["field_count_vs_header"] = [len(fields) - len(header) for fields in rows[1:]]
    return table


def ingest_source(fetched: FetchedSource, raw_dir: Path, expectations_dir: Path, docs_dir: Path) -> IngestedFile:
    """Parse the fetched CSV into `raw_dir/<sha256>.parquet`; the same bytes already ingested are a cache hit.

    A file refused for its structure also gets a Data Docs page (its closest layout's structure suite over its
    cells as text).
    """
    destination = raw_dir / f"{fetched.sha256}.parquet"
    if destination.exists() and storage.read_parquet_metadata(destination).get("source_sha256") == fetched.sha256:
        log.info("ingest cache hit: %s already ingested as %s", fetched.origin, destination)
        metadata = storage.read_parquet_metadata(destination)
        return IngestedFile(destination, fetched.origin, fetched.sha256, metadata["layout"], metadata["station"],
                            cache_hit=True)
    data = fetched.path.read_bytes()
    try:
        frame = parse_csv(data, fetched.file_name, expectations_dir)
        layout = recognise_layout([c for c in frame.columns if c not in ("timestamp", "source_row")],
                                  fetched.file_name, expectations_dir)
        station = file_station(frame, layout, fetched.file_name)
    except DataError as error:
        table = text_table(data)
        suite = closest_layout(list(table.columns), expectations_dir).structure_suite
        docs_index = report_structure_failure(table, fetched.origin, expectations_dir, docs_dir, suite)
        raise DataError(f"{str(error).replace(fetched.file_name, fetched.origin, 1)}\nData Docs: {docs_index}") from error
    storage.write_parquet(destination, frame, {"source_sha256": fetched.sha256, "source": fetched.origin,
                                               "layout": layout.name, "station": station})
    log.info("ingested %d rows of station %s (layout %s) from %s into %s", len(frame), station, layout.name,
             fetched.origin, destination)
    return IngestedFile(destination, fetched.origin, fetched.sha256, layout.name, station)


@task(cache_policy=NO_CACHE, name="ingest", task_run_name="ingest {fetched.file_name}")
def ingest_task(fetched: FetchedSource, folders: HomeFolders, sources: SourceSettings) -> IngestedFile:
    """A refused file is quarantined (see tasks/data/quarantine.py)."""
    try:
        ingested = ingest_source(fetched, folders.raw, sources.expectations_dir, folders.data_docs)
    except DataError as error:
        raise refused(error, stored_file(fetched.path.parent, fetched.sha256, fetched.origin), folders.rejected,
                      sources.rejected_max_bytes) from None
    return finish(ingested, ingested.cache_hit, "ingest")
