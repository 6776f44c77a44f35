import json
from pathlib import Path

import pandas as pd
import pytest

from tasks.core.errors import DataError
from tasks.core.settings import PROJECT_ROOT
from tasks.data.dataset import to_canonical
from tasks.data.file_layouts import known_layouts
from tasks.data.ingest import ingest_source
from tasks.data.sources import fetch_source
from tasks.data.validate import SUITE_FILE, validate_network, validate_table, validate_with_cache

EXPECTATIONS = PROJECT_ROOT / "expectations"


@pytest.fixture(scope="module")
def real_table(real_csv, tmp_path_factory) -> pd.DataFrame:
    folder = tmp_path_factory.mktemp("ingested")
    [fetched] = fetch_source(str(real_csv), folder, 5)
    return pd.read_parquet(ingest_source(fetched, folder, EXPECTATIONS, folder / "docs").path)


def check(frame: pd.DataFrame, folder: Path):
    path = folder / "table.parquet"
    frame.to_parquet(path)
    return validate_table(path, "test.csv", EXPECTATIONS / SUITE_FILE, folder / "docs")


def test_suite_is_data_with_severities():
    suite = json.loads((EXPECTATIONS / SUITE_FILE).read_text())
    severities = {expectation["severity"] for expectation in suite["expectations"]}
    assert severities == {"critical", "warning"}


def test_real_file_passes_and_docs_are_built(real_table, tmp_path):
    summary = check(real_table, tmp_path)
    assert summary.passed and summary.evaluated > 30 and not summary.warnings
    assert (tmp_path / "docs" / "index.html").is_file()


def _pressure_in_pascal(frame):
    frame.loc[[10, 11], "PRES"] *= 100
    return "PRES", "expect_column_values_to_be_between", [11, 12]


def _negative_pm25(frame):
    frame.loc[5, "pm2.5"] = -3.0
    return "pm2.5", "expect_column_values_to_be_between", [6]


def _unknown_wind(frame):
    frame.loc[7, "cbwd"] = "SW"
    return "cbwd", "expect_column_values_to_be_in_set", [8]


def _duplicate_hour(frame):
    frame.loc[20, "timestamp"] = frame.loc[19, "timestamp"]
    return "timestamp", "expect_column_values_to_be_unique", [20, 21]


def _impossible_date(frame):
    frame.loc[3, "timestamp"] = pd.NaT
    return "timestamp", "expect_column_values_to_not_be_null", [4]


@pytest.mark.parametrize("corrupt", [_pressure_in_pascal, _negative_pm25, _unknown_wind, _duplicate_hour,
                                     _impossible_date])
def test_each_broken_rule_is_named_with_column_and_rows(real_table, tmp_path, corrupt):
    frame = real_table.copy()
    column, expectation, rows = corrupt(frame)
    summary = check(frame, tmp_path)
    assert not summary.passed
    failure = next(f for f in summary.failed_critical if f.column == column and f.expectation == expectation)
    assert failure.example_rows[: len(rows)] == rows
    assert column in summary.error_message() and expectation in summary.error_message()


def test_the_network_suite_leaves_out_a_station_whose_pm25_is_mostly_missing(real_table, tmp_path):
    layout = next(item for item in known_layouts(EXPECTATIONS) if item.name == "uci_embassy")
    good = to_canonical(real_table, layout, "Good")
    blind = to_canonical(real_table.assign(**{"pm2.5": float("nan")}), layout, "Blind")
    summary = validate_network({"Good": good, "Blind": blind}, EXPECTATIONS, tmp_path / "docs")
    assert summary.stations == ["Good"] and list(summary.left_out) == ["Blind"]
    assert "expect_column_values_to_not_be_null" in summary.left_out["Blind"] and "'pm25'" in summary.left_out["Blind"]


def test_too_few_rows_fails_the_row_count_rule(real_table, tmp_path):
    summary = check(real_table.head(8760), tmp_path)
    assert [f.expectation for f in summary.failed_critical] == ["expect_table_row_count_to_be_between"]


def test_failure_raises_data_error_and_is_not_cached(real_table, tmp_path):
    frame = real_table.copy()
    _unknown_wind(frame)
    path = tmp_path / "bad.parquet"
    frame.to_parquet(path)
    with pytest.raises(DataError, match="expect_column_values_to_be_in_set"):
        validate_with_cache(path, "bad.csv", EXPECTATIONS / SUITE_FILE, tmp_path / "docs", tmp_path / "verdicts")
    assert not list((tmp_path / "verdicts").glob("*.json"))
    assert json.loads((tmp_path / "docs" / "summary.json").read_text())["passed"] is False
