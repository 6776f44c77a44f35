"""Sources: resolve the source set (URLs, files, folders, globs), fetch each file (zip archives opened) into a
byte-exact, content-named copy, with retries on I/O; and the records that name a fetched and an ingested file."""

from __future__ import annotations

import glob
import http.client
import io
import os
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.tasks import exponential_backoff

from tasks.core import storage
from tasks.core.errors import DataError, SourceError, SourceUnavailable
from tasks.core.settings import UCI_SOURCE_NAME, UCI_SOURCE_SHA256

SOURCE_SEPARATOR = ","


@dataclass(frozen=True)
class FetchedSource:
    """A byte-exact local copy of one source file, named by its sha256; `origin` says where it came from."""

    path: Path
    sha256: str
    origin: str

    @property
    def file_name(self) -> str:
        return self.origin.rstrip("/").rsplit("/", 1)[-1].rsplit("!", 1)[-1]


@dataclass(frozen=True)
class IngestedFile:
    """One parsed source file: its table in the file's own columns (Parquet), its layout and its station."""

    path: Path
    origin: str
    sha256: str
    layout: str
    station: str
    cache_hit: bool = False


def resolve_sources(source: str) -> list[str]:
    """The entries of a source set: comma-separated URLs, files, folders (their *.csv and *.zip files) or globs."""
    entries = []
    for entry in (part.strip() for part in source.split(SOURCE_SEPARATOR)):
        if not entry:
            continue
        if is_url(entry):
            entries.append(entry)
            continue
        path = Path(entry).expanduser()
        if path.is_dir():
            found = sorted(str(item) for item in path.iterdir() if item.suffix.lower() in (".csv", ".zip"))
            if not found:
                raise SourceError(f"{entry}: the folder holds no .csv or .zip file")
        elif glob.has_magic(entry):
            found = sorted(glob.glob(os.path.expanduser(entry)))
            if not found:
                raise SourceError(f"{entry}: no file matches")
        else:
            found = [entry]
        entries.extend(found)
    if not entries:
        raise SourceError(f"{source!r}: no source given")
    return list(dict.fromkeys(entries))


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


def archive_members(data: bytes, origin: str) -> list[tuple[str, bytes]]:
    """The CSV files inside a zip archive (and inside zips within it, as UCI nests them), as (origin, bytes)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as error:
        raise SourceError(f"{origin}: not a readable zip archive ({error})") from error
    members = []
    for info in sorted(archive.infolist(), key=lambda item: item.filename):
        name = info.filename
        if info.is_dir() or Path(name).name.startswith((".", "__MACOSX")) or "__MACOSX" in name:
            continue
        inner_origin = f"{origin}!{name}"
        if name.lower().endswith(".csv"):
            members.append((inner_origin, archive.read(info)))
        elif name.lower().endswith(".zip"):
            members.extend(archive_members(archive.read(info), inner_origin))
    return members


def fetch_source(source: str, cache_dir: Path, timeout_seconds: float) -> list[FetchedSource]:
    """Copy each CSV file of one source entry (a CSV, or the CSVs of a zip archive) into `cache_dir/<sha256>.csv`
    (atomically, once per content), verifying known checksums."""
    data = read_source_bytes(source, timeout_seconds)
    verify_known_checksum(source, storage.sha256_bytes(data))
    files = archive_members(data, source) if data[:4] == b"PK\x03\x04" else [(source, data)]
    if not files:
        raise SourceError(f"{source}: the archive holds no .csv file")
    fetched = []
    for origin, content in files:
        sha256 = storage.sha256_bytes(content)
        destination = cache_dir / f"{sha256}.csv"
        if not destination.exists():
            storage.write_bytes(destination, content)
        fetched.append(FetchedSource(path=destination, sha256=sha256, origin=origin))
    return fetched


def flatten(batches: list[list[FetchedSource]]) -> list[FetchedSource]:
    """The fetched files of every entry in one list, each content once."""
    unique = {}
    for fetched in (item for batch in batches for item in batch):
        unique.setdefault(fetched.sha256, fetched)
    return list(unique.values())


def is_transient_failure(task: Task, task_run: TaskRun, state: State) -> bool:
    """Retry network and disk hiccups, never a bad source or bad data: those fail the same way every time."""
    return not isinstance(state.result(raise_on_failure=False), (DataError, SourceError))


@task(cache_policy=NO_CACHE, name="resolve-sources", task_run_name="resolve {source}")
def resolve_sources_task(source: str) -> list[str]:
    return resolve_sources(source)


@task(cache_policy=NO_CACHE, name="fetch-source", task_run_name="fetch {source}")
def fetch_source_task(source: str, cache_dir: Path, timeout_seconds: float) -> list[FetchedSource]:
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
