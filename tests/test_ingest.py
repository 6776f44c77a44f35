import logging

import pandas as pd
import pytest

from tasks.core.errors import DataError, SourceError
from tasks.core.settings import PROJECT_ROOT, UCI_SOURCE_NAME
from tasks.data.ingest import ingest_source, parse_csv
from tasks.data.sources import fetch_source, read_source_bytes
from tests.conftest import csv_bytes, uci_frame

EXPECTATIONS = PROJECT_ROOT / "expectations"


def test_parse_gives_declared_dtypes_and_local_hourly_timestamps():
    frame = parse_csv(csv_bytes(uci_frame(3)), "tiny.csv")
    assert str(frame["timestamp"].dtype).endswith("Asia/Shanghai]")
    assert frame["timestamp"].iloc[1] - frame["timestamp"].iloc[0] == pd.Timedelta(hours=1)
    assert frame["pm2.5"].dtype == "float64" and frame["hour"].dtype == "Int64"
    assert str(frame["cbwd"].dtype) == "string"
    assert frame["source_row"].tolist() == [1, 2, 3]


def test_unusual_but_valid_csv_is_accepted(caplog):
    table = uci_frame(4)
    table["extra"] = "x"
    table.loc[1, "pm2.5"] = None
    shuffled = table.iloc[[2, 0, 3, 1]]
    text = shuffled.to_csv(index=False, lineterminator="\n", na_rep="").replace("NW", '"NW"')
    with caplog.at_level(logging.WARNING):
        frame = parse_csv(b"\xef\xbb\xbf" + text.encode(), "odd.csv")
    assert frame["timestamp"].is_monotonic_increasing
    assert frame["pm2.5"].isna().sum() == 1
    assert "extra" not in frame.columns and "ignoring extra column" in caplog.text
    assert frame["source_row"].tolist() == [2, 4, 1, 3]  # rows keep their place in the file


def test_missing_column_is_refused_by_name():
    with pytest.raises(DataError, match=r"required column\(s\) \['PRES'\] missing \(rule: required columns of layout uci_embassy"):
        parse_csv(csv_bytes(uci_frame(3).drop(columns="PRES")), "bad.csv")


def test_non_numeric_text_names_column_and_rows():
    table = uci_frame(5).astype({"TEMP": object})
    table.loc[3, "TEMP"] = "warm"
    with pytest.raises(DataError, match=r"column 'TEMP' holds non-numeric text .* rows \[4\]"):
        parse_csv(csv_bytes(table), "bad.csv")


@pytest.mark.parametrize("data, message", [(b"", "empty"), (b"\xff\xfe\x00bad", "not UTF-8"),
                                          (",".join(["No", "year"]).encode() + b"\r\n", "no known file layout")])
def test_unreadable_files_are_refused(data, message):
    with pytest.raises(DataError, match=message):
        parse_csv(data, "bad.csv")


def test_impossible_dates_become_missing_timestamps_for_the_suite_to_flag():
    table = uci_frame(3)
    table.loc[0, ["month", "day"]] = [2, 30]
    table.loc[1, "hour"] = 24
    frame = parse_csv(csv_bytes(table), "dates.csv")
    assert frame["timestamp"].isna().sum() == 2


def test_fetch_copies_by_content_and_ingest_hits_its_cache(tmp_path, caplog):
    source = tmp_path / "input.csv"
    source.write_bytes(csv_bytes(uci_frame(30)))
    [fetched] = fetch_source(str(source), tmp_path / "cache", timeout_seconds=5)
    assert fetched.path.read_bytes() == source.read_bytes() and fetched.path.stem == fetched.sha256
    first = ingest_source(fetched, tmp_path / "raw", EXPECTATIONS, tmp_path / "docs")
    assert (first.layout, first.station) == ("uci_embassy", "US_Embassy")
    modified = first.path.stat().st_mtime_ns
    with caplog.at_level(logging.INFO):
        again = ingest_source(fetched, tmp_path / "raw", EXPECTATIONS, tmp_path / "docs")
    assert again.cache_hit and not first.cache_hit
    assert again.path == first.path and again.path.stat().st_mtime_ns == modified
    assert "ingest cache hit" in caplog.text


def test_known_file_with_wrong_checksum_is_refused(tmp_path):
    impostor = tmp_path / UCI_SOURCE_NAME
    impostor.write_bytes(csv_bytes(uci_frame(3)))
    with pytest.raises(SourceError, match="does not match the published UCI file"):
        fetch_source(str(impostor), tmp_path / "cache", timeout_seconds=5)


def test_real_file_passes_its_checksum_and_parses(real_csv, tmp_path):
    [fetched] = fetch_source(str(real_csv), tmp_path / "cache", timeout_seconds=5)
    frame = pd.read_parquet(ingest_source(fetched, tmp_path / "raw", EXPECTATIONS, tmp_path / "docs").path)
    assert len(frame) == 43824 and frame["pm2.5"].isna().sum() == 2067


@pytest.mark.parametrize("source", ["ftp://example.org/x.csv", "s3://bucket/x.csv"])
def test_unsupported_schemes_are_refused(source):
    with pytest.raises(SourceError, match="only http"):
        read_source_bytes(source, timeout_seconds=1)


def test_missing_local_file_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        read_source_bytes(str(tmp_path / "nope.csv"), timeout_seconds=1)
