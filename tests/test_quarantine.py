"""The quarantine of refused source files: moved out of the store with their refusal, derived files removed, and
kept under its size bound."""

import json
import os

from tasks.core.errors import DataError
from tasks.data.quarantine import REFUSAL_FILE, quarantine, refused, stored_file


def store(tmp_path, name: str, content: bytes):
    source = tmp_path / "data" / "source"
    source.mkdir(parents=True, exist_ok=True)
    (source / f"{name}.csv").write_bytes(content)
    derived = tmp_path / "data" / "raw" / f"{name}.parquet"
    derived.parent.mkdir(parents=True, exist_ok=True)
    derived.write_bytes(b"table")
    return stored_file(source, name, f"/in/{name}-file.csv", derived)


def test_a_refused_file_leaves_the_store_for_the_quarantine_with_its_refusal(tmp_path):
    stored = store(tmp_path, "aaa", b"bad bytes")
    error = refused(DataError("/in/aaa-file.csv: column 'x' (rule: r)\nData Docs: /docs/index.html"), stored,
                    tmp_path / "data" / "rejected", 1000)
    folder = tmp_path / "data" / "rejected" / "aaa"
    assert f"Quarantined: {folder}" in str(error) and str(error).startswith("/in/aaa-file.csv: column 'x'")
    assert not stored.source_copy.exists() and not stored.derived[0].exists()
    assert (folder / "aaa-file.csv").read_bytes() == b"bad bytes"
    refusal = json.loads((folder / REFUSAL_FILE).read_text())
    assert (refusal["origin"], refusal["data_docs"], refusal["file"]) == ("/in/aaa-file.csv", "/docs/index.html",
                                                                          "aaa-file.csv")


def test_the_quarantine_keeps_to_its_bound_dropping_the_oldest_first(tmp_path):
    rejected = tmp_path / "data" / "rejected"
    for number, name in enumerate(("old", "mid", "new")):
        folder = quarantine(store(tmp_path, name, b"x" * 3000), "refused", rejected, 10_000)
        os.utime(folder / REFUSAL_FILE, (number, number))  # refusal times one second apart, oldest first
    quarantine(store(tmp_path, "newest", b"x" * 3000), "refused", rejected, 10_000)  # four would be over 12 kB
    assert sorted(path.name for path in rejected.iterdir()) == ["mid", "new", "newest"]
    assert sum(path.stat().st_size for path in rejected.rglob("*") if path.is_file()) <= 10_000


def test_a_file_larger_than_the_bound_keeps_its_refusal_only(tmp_path):
    folder = quarantine(store(tmp_path, "big", b"x" * 5000), "refused", tmp_path / "rejected", 1000)
    assert [path.name for path in folder.iterdir()] == [REFUSAL_FILE]
    assert "over the quarantine's bound" in json.loads((folder / REFUSAL_FILE).read_text())["file_not_kept"]
