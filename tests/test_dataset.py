"""Source sets and the network's dataset on tiny generated station files: which stations, how many, and what
is refused or left out never depends on the nine shared ones."""

import io
import logging
import zipfile

import pytest

from tasks.core.errors import DataError, SourceError
from tasks.core.records import Dataset
from tasks.data.dataset import build_dataset, read_network
from tasks.data.ingest import EXPECTATIONS_DIR, ingest_source
from tasks.data.sources import fetch_source, flatten, resolve_sources
from tasks.data.validate import validate_with_cache
from tasks.model.features import station_grid
from tests.conftest import csv_bytes, multisite_frame

DAYS = 24


def station_file(folder, station, hours=DAYS * 5, start="2013-03-01", name=None, seed=0, **changes):
    frame = multisite_frame(hours, station, start=start, seed=seed)
    for column, value in changes.items():
        frame[column] = value
    path = folder / (name or f"PRSA_Data_{station}_20130301-20170228.csv")
    path.write_bytes(csv_bytes(frame))
    return path


def ingest_all(paths, tmp_path):
    fetched = flatten([fetch_source(str(path), tmp_path / "cache", 5) for path in paths])
    return [ingest_source(item, tmp_path / "raw", EXPECTATIONS_DIR, tmp_path / "docs") for item in fetched]


def build(paths, tmp_path):
    return build_dataset(ingest_all(paths, tmp_path), tmp_path / "dataset", EXPECTATIONS_DIR, tmp_path / "docs",
                         tmp_path / "validated")


def test_a_folder_a_glob_and_a_list_resolve_to_the_same_files(tmp_path):
    files = [station_file(tmp_path, name) for name in ("A", "B", "C")]
    (tmp_path / "notes.txt").write_text("not a station file")
    expected = [str(path) for path in files]
    assert resolve_sources(str(tmp_path)) == expected
    assert resolve_sources(str(tmp_path / "PRSA_Data_*.csv")) == expected
    assert resolve_sources(",".join(expected[::-1]) + "," + expected[0]) == expected[::-1]  # each entry once
    with pytest.raises(SourceError, match="no file matches"):
        resolve_sources(str(tmp_path / "nothing_*.csv"))


def test_a_zip_archive_with_a_zip_inside_yields_every_csv(tmp_path):
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        for station in ("A", "B"):
            archive.writestr(f"PRSA_Data/PRSA_Data_{station}_20130301-20170228.csv", csv_bytes(multisite_frame(30, station)))
    outer = tmp_path / "multi.zip"
    with zipfile.ZipFile(outer, "w") as archive:
        archive.writestr("PRSA2017_Data.zip", inner.getvalue())
        archive.writestr("__MACOSX/._junk.csv", b"junk")
    fetched = fetch_source(str(outer), tmp_path / "cache", 5)
    assert [item.file_name for item in fetched] == ["PRSA_Data_A_20130301-20170228.csv", "PRSA_Data_B_20130301-20170228.csv"]
    assert [item.station for item in (ingest_source(f, tmp_path / "raw", EXPECTATIONS_DIR, tmp_path / "docs")
                                      for f in fetched)] == ["A", "B"]


def test_the_dataset_is_partitioned_by_station_and_keyed_by_content_not_names(tmp_path):
    first = build([station_file(tmp_path, name, seed=i) for i, name in enumerate(("A", "B"))], tmp_path)
    dataset = first.dataset
    assert dataset.stations == ["A", "B"] and first.summary.left_out == {}
    assert sorted(path.parent.name for path in dataset.path.glob("station=*/*.parquet")) == ["station=A", "station=B"]
    assert set(read_network(dataset)["station"]) == {"A", "B"}
    renamed = tmp_path / "copy"
    renamed.mkdir()
    again = build([station_file(renamed, name, seed=i) for i, name in enumerate(("A", "B"))], tmp_path / "second")
    assert again.dataset.key == dataset.key
    assert Dataset.load(dataset.path) == dataset


def test_the_content_key_before_an_hour_ignores_every_later_hour(tmp_path):
    import pandas as pd

    files = [station_file(tmp_path, "A"), station_file(tmp_path, "B", seed=1)]
    whole = build(files, tmp_path).dataset
    cut_folder = tmp_path / "cut"
    cut_folder.mkdir()
    for path in files:  # the header and the first three days
        (cut_folder / path.name).write_text("".join(path.read_text().splitlines(keepends=True)[: 1 + DAYS * 3]))
    cut = build(list(cut_folder.iterdir()), tmp_path / "second").dataset
    hours = [pd.Timestamp(f"2013-03-0{day} 05:00", tz="Asia/Shanghai") for day in (2, 3, 4)]
    keys = whole.content_keys(["B", "A"], hours)
    assert keys == [whole.content_key(["A", "B"], hour) for hour in hours] and len(set(keys)) == 3
    assert cut.content_keys(["A", "B"], hours[:2]) == keys[:2]  # the cut file ends on day 3, after those hours
    assert cut.content_key(["A", "B"], hours[2]) != keys[2] and whole.content_key(["A"], hours[0]) != keys[0]


def test_stations_with_different_time_ranges_share_the_networks_hours(tmp_path):
    files = [station_file(tmp_path, "Early", hours=DAYS * 4), station_file(tmp_path, "Late", hours=DAYS * 4,
                                                                           start="2013-03-02", seed=1)]
    dataset = build(files, tmp_path).dataset
    assert (dataset.start, dataset.end) == ("2013-03-01T00:00:00+08:00", "2013-03-05T23:00:00+08:00")
    early, late = station_grid(dataset, "Early"), station_grid(dataset, "Late")
    assert early.index.equals(late.index) and len(early) == DAYS * 5
    assert early["pm25"].iloc[-DAYS:].isna().all() and late["pm25"].iloc[:DAYS].isna().all()


def test_a_file_naming_another_station_inside_is_refused_naming_file_column_and_rule(tmp_path):
    wrong = station_file(tmp_path, "Dongsi", name="PRSA_Data_Guanyuan_20130301-20170228.csv")
    with pytest.raises(DataError) as refusal:
        ingest_all([wrong], tmp_path)
    message = str(refusal.value)
    assert message.startswith(str(wrong)) and "column 'station' names station 'Dongsi'" in message
    assert "names 'Guanyuan' (rule: station matches file name)" in message and "rows [1, 2, 3, 4, 5]" in message


@pytest.mark.parametrize("station", ["../../etc", ".hidden", "a/b"])
def test_a_station_name_that_is_not_a_plain_name_is_refused(tmp_path, station):
    path = station_file(tmp_path, station, name="stations.csv")
    with pytest.raises(DataError, match=r"not a plain name \(rule: station names are letters"):
        ingest_all([path], tmp_path)


def test_the_same_station_in_two_files_is_refused(tmp_path):
    first = station_file(tmp_path, "A", name="one.csv")
    second = station_file(tmp_path, "A", name="two.csv", seed=5)
    with pytest.raises(DataError, match=r"station 'A' is in two files, .*one\.csv and .*two\.csv \(rule: one file per station\)"):
        build([first, second], tmp_path)


def test_a_station_with_no_pm25_is_left_out_with_a_warning_in_log_and_docs(tmp_path, caplog):
    files = [station_file(tmp_path, "Good"), station_file(tmp_path, "Blind", **{"PM2.5": None})]
    with caplog.at_level(logging.WARNING):
        validated = build(files, tmp_path)
    assert validated.dataset.stations == ["Good"]
    assert "expect_column_values_to_not_be_null" in validated.summary.left_out["Blind"]
    assert "station Blind is left out of this run" in caplog.text
    docs = (tmp_path / "docs" / "index.html").read_text()
    assert "Blind" in docs and "Good" in docs  # the Data Docs show every station's results


def test_a_network_with_no_station_left_is_refused(tmp_path):
    files = [station_file(tmp_path, "Blind", **{"PM2.5": None})]
    with pytest.raises(DataError, match=r"no station is left to forecast \(rule: at least one station\)"):
        build(files, tmp_path)


def test_a_station_files_value_rule_names_file_column_and_rows(tmp_path):
    path = station_file(tmp_path, "Bad")
    lines = path.read_text().splitlines(keepends=True)
    cells = lines[3].split(",")
    cells[5] = "-4"  # PM2.5 of data row 3
    path.write_text("".join(lines[:3]) + ",".join(cells) + "".join(lines[4:]))
    [item] = ingest_all([path], tmp_path)
    with pytest.raises(DataError) as refusal:
        validate_with_cache(item.path, item.origin, EXPECTATIONS_DIR / "multisite_raw.json", tmp_path / "docs",
                            tmp_path / "validated")
    message = str(refusal.value)
    assert message.startswith(str(path)) and "expect_column_values_to_be_between" in message
    assert "'PM2.5'" in message and "rows [3]" in message
