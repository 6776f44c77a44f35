"""Ingest: fetch the UCI CSV (path or URL), parse it with declared dtypes, write it as Parquet."""

from __future__ import annotations

import csv
import http.client
import io
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.tasks import exponential_backoff

from tasks import storage
from tasks.errors import DataError, SourceError, SourceUnavailable
from tasks.settings import UCI_SOURCE_NAME, UCI_SOURCE_SHA256
from tasks.validate import report_structure_failure

TIMEZONE = "Asia/Shanghai"
NUMERIC_COLUMNS = ("pm2.5", "DEWP", "TEMP", "PRES", "Iws", "Is", "Ir")
CALENDAR_COLUMNS = ("year", "month", "day", "hour")
REQUIRED_COLUMNS = ("No", *CALENDAR_COLUMNS, "pm2.5", "DEWP", "TEMP", "PRES", "cbwd", "Iws", "Is", "Ir")
EXAMPLE_ROWS = 5
OTHER_DELIMITERS = (";", "\t", "|")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FetchedSource:
    """A byte-exact local copy of the source, named by its sha256."""

    path: Path
    sha256: str
    origin: str


def is_url(source: str) -> bool:
    return source.lower().startswith(("http://", "https://"))


def read_source_bytes(source: str, timeout_seconds: float) -> bytes:
    """Read the raw bytes of a local path or an http(s) URL.

    A permanent answer (4xx, bad scheme, no such file) raises SourceError; a failure worth retrying (5xx,
    408/429, reset, refused, timeout) raises SourceUnavailable; local I/O errors propagate (also retried).
    """
    if is_url(source):
        request = urllib.request.Request(source, headers={"User-Agent": "pm25-pipeline"})
        try:
            with urllib.request.urlopen(request, timeout=timeout_seconds) as response:
                return response.read()
        except urllib.error.HTTPError as error:
            if 400 <= error.code < 500 and error.code not in (408, 429):
                raise SourceError(f"{source}: HTTP {error.code} {error.reason}") from error
            raise SourceUnavailable(f"{source}: HTTP {error.code} {error.reason}") from error
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:  # reset, refused, timeout
            reason = getattr(error, "reason", None) or error
            raise SourceUnavailable(f"{source}: {type(error).__name__}: {reason}") from error
    if "://" in source:
        raise SourceError(f"{source}: only http(s) URLs and local paths are accepted")
    path = Path(source).expanduser()
    if not path.is_file():
        raise SourceError(f"{source}: no such file")
    return path.read_bytes()


def verify_known_checksum(source: str, sha256: str) -> None:
    """The published UCI file, fetched by its name or address, must be byte-identical to the original."""
    if source.rstrip("/").rsplit("/", 1)[-1] == UCI_SOURCE_NAME and sha256 != UCI_SOURCE_SHA256:
        raise SourceError(
            f"{source}: sha256 {sha256} does not match the published UCI file ({UCI_SOURCE_SHA256}); refusing it"
        )


def fetch_source(source: str, cache_dir: Path, timeout_seconds: float) -> FetchedSource:
    """Copy the source into `cache_dir/<sha256>.csv` (atomically, once per content) and verify known checksums."""
    data = read_source_bytes(source, timeout_seconds)
    sha256 = storage.sha256_bytes(data)
    verify_known_checksum(source, sha256)
    destination = cache_dir / f"{sha256}.csv"
    if not destination.exists():
        storage.write_bytes(destination, data)
    return FetchedSource(path=destination, sha256=sha256, origin=source)


def _example_rows(frame: pd.DataFrame, mask: pd.Series) -> list[int]:
    """Data-row numbers (1 = first row after the header) of the first few rows where `mask` holds."""
    return [int(i) + 1 for i in frame.index[mask.to_numpy()][:EXAMPLE_ROWS]]


def check_row_widths(text: str, name: str) -> None:
    """Every data row has as many fields as the header; pandas would quietly pad a short (truncated) row."""
    widths = [len(fields) for fields in csv.reader(io.StringIO(text)) if fields]
    odd = [row for row, width in enumerate(widths[1:], start=1) if width != widths[0]]
    if odd:
        raise DataError(
            f"{name}: row(s) {odd[:EXAMPLE_ROWS]} have {widths[odd[0]]} field(s) where the header has {widths[0]} "
            "(rule: complete rows; a truncated file?)"
        )


def parse_csv(data: bytes, name: str) -> pd.DataFrame:
    """Parse the CSV bytes into a typed frame with a tz-aware hourly `timestamp`, sorted by time.

    Structure is checked here (text, delimiter, columns, numeric cells); value rules are left to the
    Great Expectations suite, so that its Data Docs show them. Invalid dates become NaT for the suite to flag.
    """
    if not data.strip():
        raise DataError(f"{name}: the file is empty")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(f"{name}: not UTF-8 text (byte {error.start}: {data[error.start:error.start + 4]!r})") from error
    try:
        raw = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.ParserError as error:
        raise DataError(f"{name}: not a well-formed CSV: {error}") from error
    raw.columns = [str(column).strip() for column in raw.columns]
    missing = [column for column in REQUIRED_COLUMNS if column not in raw.columns]
    if missing:
        hint = next((f"; the header looks delimited by {delimiter!r}, not ','" for delimiter in OTHER_DELIMITERS
                     if len(raw.columns) == 1 and delimiter in raw.columns[0]), "")
        raise DataError(
            f"{name}: required column(s) {missing} missing (rule: required columns); found {list(raw.columns)}{hint}"
        )
    extra = [column for column in raw.columns if column not in REQUIRED_COLUMNS]
    if extra:
        log.warning("%s: ignoring extra column(s) %s", name, extra)
    if raw.empty:
        raise DataError(f"{name}: the header has no data rows")

    check_row_widths(text, name)
    cells = raw[list(REQUIRED_COLUMNS)].apply(lambda column: column.str.strip())
    missing_cell = cells.isin(["", "NA", "NaN", "nan"])
    frame = pd.DataFrame(index=cells.index)
    for column in ("No", *CALENDAR_COLUMNS, *NUMERIC_COLUMNS):
        values = pd.to_numeric(cells[column].mask(missing_cell[column]), errors="coerce")
        bad = values.isna() & ~missing_cell[column]
        if bad.any():
            examples = cells[column][bad].head(EXAMPLE_ROWS).tolist()
            raise DataError(
                f"{name}: column {column!r} holds non-numeric text (rule: numeric column) in rows "
                f"{_example_rows(cells, bad)}, e.g. {examples}"
            )
        if column in ("No", *CALENDAR_COLUMNS):
            fractional = values.notna() & (values != values.round())
            if fractional.any():
                raise DataError(
                    f"{name}: column {column!r} holds non-integer values (rule: integer column) in rows "
                    f"{_example_rows(cells, fractional)}"
                )
            frame[column] = values.astype("Int64")
        else:
            frame[column] = values.astype("float64")
    frame["cbwd"] = cells["cbwd"].mask(missing_cell["cbwd"]).astype("string")
    frame.insert(0, "timestamp", build_timestamps(frame))
    frame.insert(1, "source_row", pd.Series(range(1, len(frame) + 1), index=frame.index, dtype="int64"))
    return frame.sort_values("timestamp", kind="stable", na_position="last").reset_index(drop=True)


def build_timestamps(frame: pd.DataFrame) -> pd.Series:
    """Local Beijing time from year/month/day/hour; impossible dates or hours become NaT."""
    parts = frame[list(CALENDAR_COLUMNS)].astype("float64")
    valid_hour = parts["hour"].between(0, 23)
    dates = pd.to_datetime(
        {"year": parts["year"], "month": parts["month"], "day": parts["day"]}, errors="coerce"
    )
    stamps = dates + pd.to_timedelta(parts["hour"].where(valid_hour), unit="h")
    # China has kept UTC+8 without daylight saving since 1991, so every local hour exists exactly once.
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


def ingest_source(fetched: FetchedSource, raw_dir: Path, expectations_dir: Path, docs_dir: Path) -> Path:
    """Parse the fetched CSV into `raw_dir/<sha256>.parquet`; the same bytes already ingested are a cache hit.

    A file refused for its structure also gets a Data Docs page (the structure suite over its cells as text).
    """
    destination = raw_dir / f"{fetched.sha256}.parquet"
    if destination.exists() and storage.read_parquet_metadata(destination).get("source_sha256") == fetched.sha256:
        log.info("ingest cache hit: %s already ingested as %s", fetched.origin, destination)
        return destination
    data = fetched.path.read_bytes()
    try:
        frame = parse_csv(data, name=fetched.origin)
    except DataError as error:
        docs_index = report_structure_failure(text_table(data), fetched.origin, expectations_dir, docs_dir)
        raise DataError(f"{error}\nData Docs: {docs_index}") from error
    storage.write_parquet(destination, frame, {"source_sha256": fetched.sha256, "source": fetched.origin})
    log.info("ingested %d rows from %s into %s", len(frame), fetched.origin, destination)
    return destination


def is_transient_failure(task: Task, task_run: TaskRun, state: State) -> bool:
    """Retry network and disk hiccups, never a bad source or bad data: those fail the same way every time."""
    return not isinstance(state.result(raise_on_failure=False), (DataError, SourceError))


@task(cache_policy=NO_CACHE, name="fetch-source", task_run_name="fetch {source}")
def fetch_source_task(source: str, cache_dir: Path, timeout_seconds: float) -> FetchedSource:
    """I/O only, so it is the task that retries; see `fetch_with_retries`."""
    return fetch_source(source, cache_dir, timeout_seconds)


def fetch_with_retries(retries: int, base_delay_seconds: float) -> Task:
    """The fetch task with exponential backoff (base, 2·base, 4·base, …, each up to 50 % longer at random) on transient failures."""
    return fetch_source_task.with_options(
        retries=retries,
        retry_delay_seconds=exponential_backoff(base_delay_seconds),
        retry_jitter_factor=0.5,
        retry_condition_fn=is_transient_failure,
    )


@task(cache_policy=NO_CACHE, name="ingest", task_run_name="ingest {fetched.sha256:.12}")
def ingest_task(fetched: FetchedSource, raw_dir: Path, expectations_dir: Path, docs_dir: Path) -> Path:
    return ingest_source(fetched, raw_dir, expectations_dir, docs_dir)
