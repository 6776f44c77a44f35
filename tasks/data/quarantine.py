"""Quarantine: a source file that ingest or validation refuses leaves the store as it was.

Its byte copy moves from data/source/ to data/rejected/<sha256>/, beside a refusal.json that says where it came
from, when and why it was refused and where its Data Docs are; what was derived from it (its table in data/raw/,
its passing file verdict in data/validated/) is removed. No later run reads data/rejected/. The quarantine is kept
under a size bound: the oldest refusals go first, and a file larger than the bound keeps its refusal.json only.
"""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tasks.core import storage
from tasks.core.errors import DataError

REFUSAL_FILE = "refusal.json"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredFile:
    """Where one source file's copies live in the store."""

    sha256: str
    origin: str
    file_name: str
    source_copy: Path
    derived: tuple[Path, ...] = ()  # its raw table, its passing verdict


def stored_file(source_cache: Path, sha256: str, origin: str, *derived: Path) -> StoredFile:
    """A source file as the store holds it: its copy in `source_cache` (data/source) and what was derived from it."""
    name = origin.rstrip("/").rsplit("/", 1)[-1].rsplit("!", 1)[-1]
    return StoredFile(sha256, origin, name, source_cache / f"{sha256}.csv", derived)


def quarantine(stored: StoredFile, message: str, rejected_dir: Path, max_bytes: int) -> Path:
    """Move the refused file out of the store into `rejected_dir/<sha256>/` with its refusal; remove what was
    derived from it; keep the quarantine under `max_bytes`. Returns the quarantine folder."""
    folder = rejected_dir / stored.sha256
    folder.mkdir(parents=True, exist_ok=True)
    docs = re.search(r"Data Docs: (\S+)", message)
    size = stored.source_copy.stat().st_size if stored.source_copy.exists() else 0
    kept = stored.source_copy.exists() and size <= max_bytes
    if kept:
        storage.write_bytes(folder / stored.file_name, stored.source_copy.read_bytes())
    storage.write_json(folder / REFUSAL_FILE, {
        "origin": stored.origin, "sha256": stored.sha256, "refused_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "message": message, "data_docs": docs.group(1) if docs else None,
        "file": stored.file_name if kept else None,
        **({} if kept or not size else {"file_not_kept": f"{size} bytes, over the quarantine's bound of {max_bytes}"}),
    })
    for path in (stored.source_copy, *stored.derived):
        path.unlink(missing_ok=True)
    prune(rejected_dir, max_bytes, keep=folder)
    log.warning("refused file %s quarantined in %s", stored.origin, folder)
    return folder


def prune(rejected_dir: Path, max_bytes: int, keep: Path) -> None:
    """Remove the oldest quarantined files (never `keep`) until the quarantine holds at most `max_bytes`."""
    folders = sorted((folder for folder in rejected_dir.iterdir() if folder.is_dir()), key=_refused_at)
    total = sum(_size(folder) for folder in folders)
    for folder in folders:
        if total <= max_bytes:
            break
        if folder != keep:
            total -= _size(folder)
            shutil.rmtree(folder, ignore_errors=True)


def _size(folder: Path) -> int:
    """Bytes in `folder`, ignoring files that another run removes meanwhile."""
    total = 0
    for path in folder.iterdir():
        try:
            total += path.stat().st_size
        except OSError:
            pass
    return total


def _refused_at(folder: Path) -> float:
    try:
        return (folder / REFUSAL_FILE).stat().st_mtime
    except OSError:
        return 0.0


def refused(error: DataError, stored: StoredFile, rejected_dir: Path, max_bytes: int) -> DataError:
    """`error` with where its file went; the file is quarantined first."""
    folder = quarantine(stored, str(error), rejected_dir, max_bytes)
    return DataError(f"{error}\nQuarantined: {folder} (the file and why it was refused; no run reads it)")

