"""Weather forecast files: the layout's acceptance and refusals, and which issue an origin may read."""

from __future__ import annotations

import pandas as pd
import pytest

from tasks.core import storage
from tasks.core.errors import DataError
from tasks.core.settings import PROJECT_ROOT
from tasks.core.weather import WEATHER_COLUMNS, newest_issues
from tasks.data.sources import FetchedSource
from tasks.data.weather import read_weather, store_weather

EXPECTATIONS = PROJECT_ROOT / "expectations"
STATIONS = ["Aotizhongxin", "Dongsi"]
HEADER = ",".join(WEATHER_COLUMNS)
# Two issues (00 and 12 UTC) of the same valid hours at Aotizhongxin, one at Dongsi, given in Beijing time and UTC.
GOOD_ROWS = [
    "Aotizhongxin,2016-01-01T08:00:00+08:00,2016-01-01T13:00:00+08:00,1.5,-12.0,1021.3,2.1,315,0.0",
    "Aotizhongxin,2016-01-01T08:00:00+08:00,2016-01-02T00:00:00Z,0.5,-11.0,1020.9,3.4,320,0.0",
    "Aotizhongxin,2016-01-01T12:00:00Z,2016-01-02T00:00:00Z,0.2,-10.5,1020.1,4.0,330,0.2",
    "Dongsi,2016-01-01T00:00:00Z,2016-01-01T05:00:00Z,1.7,-12.4,1021.0,,,0.0",
]


def fetched_file(tmp_path, rows: list[str], name: str = "forecast.csv") -> FetchedSource:
    data = ("\n".join([HEADER, *rows]) + "\n").encode()
    sha256 = storage.sha256_bytes(data)
    path = tmp_path / "source" / f"{sha256}.csv"
    storage.write_bytes(path, data)
    return FetchedSource(path=path, sha256=sha256, origin=str(tmp_path / name))


def store(tmp_path, fetched: FetchedSource):
    return store_weather(fetched, tmp_path / "weather", STATIONS, EXPECTATIONS, tmp_path / "docs")


def test_a_good_file_is_stored_in_utc_and_reused(tmp_path):
    stored = store(tmp_path, fetched_file(tmp_path, GOOD_ROWS))
    table = pd.read_parquet(stored.path)
    assert list(table.columns) == ["source_row", *WEATHER_COLUMNS]
    assert str(table["issued_at"].dt.tz) == "UTC"
    assert table["valid_at"].iloc[0] == pd.Timestamp("2016-01-01T05:00:00Z")
    assert stored.stations == ("Aotizhongxin", "Dongsi") and stored.newest_issue == "2016-01-01T12:00:00+00:00"
    assert table["wind_speed"].isna().sum() == 1  # an empty cell is a missing value, not a refusal
    again = store(tmp_path, fetched_file(tmp_path, GOOD_ROWS))
    assert again.cache_hit and again.path == stored.path


@pytest.mark.parametrize(("row", "words"), [
    ("Dongsi,2016-01-01T12:00:00Z,2016-01-01T06:00:00Z,1.7,-12.4,1021.0,2.0,90,0.0",
     ["expect_column_pair_values_a_to_be_greater_than_b", "valid_at", "issued_at"]),
    ("Dongsi,2016-01-01T00:00:00Z,2016-01-01T06:00:00Z,1.7,-12.4,102100.0,2.0,90,0.0",
     ["column 'pressure'", "expect_column_values_to_be_between", "1 row(s)", "102100.0"]),
    ("Dongsi,2016-01-01T00:00:00Z,2016-01-01T06:00:00Z,274.8,-12.4,1021.0,2.0,90,0.0",
     ["column 'temperature'", "274.8"]),
    ("Gucheng,2016-01-01T00:00:00Z,2016-01-01T06:00:00Z,1.7,-12.4,1021.0,2.0,90,0.0",
     ["column 'station'", "['Gucheng']", "known stations", "rows [5]"]),
    ("Dongsi,2016-01-01T00:00:00,2016-01-01T06:00:00Z,1.7,-12.4,1021.0,2.0,90,0.0",
     ["column 'issued_at'", "UTC offset", "rows [5]"]),
    ("Dongsi,2016-01-01T00:00:00Z,2016-01-01T06:00:00Z,warm,-12.4,1021.0,2.0,90,0.0",
     ["column 'temperature'", "non-numeric", "rows [5]"]),
])
def test_a_refused_file_names_its_rule_and_changes_nothing_stored(tmp_path, row, words):
    kept = store(tmp_path, fetched_file(tmp_path, GOOD_ROWS))
    before = {path: path.read_bytes() for path in (tmp_path / "weather").iterdir()}
    with pytest.raises(DataError) as refusal:
        store(tmp_path, fetched_file(tmp_path, [*GOOD_ROWS, row], name="bad.csv"))
    assert "bad.csv" in str(refusal.value)
    for word in words:
        assert word in str(refusal.value)
    assert {path: path.read_bytes() for path in (tmp_path / "weather").iterdir()} == before
    assert kept.path in before


def test_a_header_other_than_the_layouts_is_refused(tmp_path):
    text = "\n".join([HEADER.replace("dew_point", "dewpoint"), GOOD_ROWS[0]]).encode()
    path = tmp_path / "odd.csv"
    path.write_bytes(text)
    with pytest.raises(DataError, match=r"missing \['dew_point'\], unexpected \['dewpoint'\]"):
        store(tmp_path, FetchedSource(path=path, sha256=storage.sha256_bytes(text), origin=str(path)))


def test_two_files_that_disagree_on_one_forecast_are_refused(tmp_path):
    first = store(tmp_path, fetched_file(tmp_path, GOOD_ROWS, name="a.csv"))
    other = GOOD_ROWS[0].replace(",1.5,", ",9.5,")
    second = store(tmp_path, fetched_file(tmp_path, [other], name="b.csv"))
    assert len(read_weather([first, first])) == len(GOOD_ROWS)  # the same rows twice are one forecast
    with pytest.raises(DataError, match="a.csv, .*b.csv: 2 row"):
        read_weather([first, second])


def test_an_origin_reads_the_newest_issue_at_or_before_it_never_a_later_one(tmp_path):
    table = read_weather([store(tmp_path, fetched_file(tmp_path, GOOD_ROWS))])
    midnight_hour = pd.Timestamp("2016-01-02T00:00:00Z")

    def issue_read(origin: str) -> pd.Series:
        chosen = newest_issues(table, pd.Timestamp(origin))
        return chosen.set_index(["station", "valid_at"])["issued_at"]

    assert newest_issues(table, pd.Timestamp("2015-12-31T23:59:00Z")).empty
    early = issue_read("2016-01-01T11:59:00Z")
    assert early[("Aotizhongxin", midnight_hour)] == pd.Timestamp("2016-01-01T00:00:00Z")
    assert len(early) == 3  # every valid hour once
    at_issue = issue_read("2016-01-01T20:00:00+08:00")  # 12 UTC: the second issue, exactly at its issue time
    assert at_issue[("Aotizhongxin", midnight_hour)] == pd.Timestamp("2016-01-01T12:00:00Z")
    assert newest_issues(table, pd.Timestamp("2016-01-01T20:00:00+08:00")).loc[lambda t: t.valid_at == midnight_hour,
                                                                                "temperature"].item() == 0.2
