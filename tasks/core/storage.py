"""Atomic, content-addressed file I/O shared by every stage.

Every write goes to a temporary file in the destination folder and is renamed into place, so a reader
sees either the previous whole file or the new whole file, never a partial one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(*parts: Any) -> str:
    """A short stable key for cache folders, from JSON-serialisable parts."""
    return sha256_bytes(json.dumps(parts, sort_keys=True, default=str).encode())[:16]


@contextmanager
def atomic_path(destination: Path) -> Iterator[Path]:
    """Yield a temporary path beside `destination`; rename it into place only if the block succeeds."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    # The temporary name keeps the destination's suffix: some writers (Keras) insist on it.
    handle, temporary = tempfile.mkstemp(
        prefix=f".{destination.name}.", suffix=f".tmp{destination.suffix}", dir=destination.parent
    )
    os.close(handle)
    temporary_path = Path(temporary)
    try:
        yield temporary_path
        with open(temporary_path, "rb+") as written:
            os.fsync(written.fileno())
        temporary_path.chmod(0o644)  # mkstemp creates 0600; outputs are meant to be shared and served
        os.replace(temporary_path, destination)
    finally:
        temporary_path.unlink(missing_ok=True)


def write_atomically(destination: Path, write: Callable[[Path], Any]) -> Path:
    """Call `write(temporary_path)`, then move the result to `destination` in one rename."""
    with atomic_path(destination) as temporary:
        write(temporary)
    return destination


def write_bytes(destination: Path, data: bytes) -> Path:
    return write_atomically(destination, lambda path: path.write_bytes(data))


def write_text(destination: Path, text: str) -> Path:
    return write_atomically(destination, lambda path: path.write_text(text, encoding="utf-8"))


def write_json(destination: Path, payload: Any) -> Path:
    return write_text(destination, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_method_tables(destination: Path, method: str, tables: dict[str, dict[str, Any]]) -> Path:
    """Per-station tables (JSON-ready) stamped with the method that made them, as a model folder keeps them."""
    return write_json(destination, {"method": method, "stations": tables})


def read_method_tables(path: Path, method: str) -> dict[str, dict[str, Any]] | None:
    """The per-station tables at `path`; None where there are none, or only ones another method made (which a
    caller fits again)."""
    if not path.exists():
        return None
    payload = read_json(path)
    return payload["stations"] if payload.get("method") == method else None


def write_parquet(destination: Path, frame: pd.DataFrame, metadata: dict[str, str] | None = None) -> Path:
    """Write `frame` as Parquet with extra key/value `metadata` in the file's schema."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    merged = {**(table.schema.metadata or {}), **{k.encode(): v.encode() for k, v in (metadata or {}).items()}}
    table = table.replace_schema_metadata(merged)
    return write_atomically(destination, lambda path: pq.write_table(table, path))


def read_parquet_metadata(path: Path) -> dict[str, str]:
    raw = pq.read_schema(path).metadata or {}
    return {key.decode(): value.decode() for key, value in raw.items() if not key.startswith(b"pandas")}
