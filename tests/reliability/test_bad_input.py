"""Bad input is refused clearly and damages nothing; unusual but valid input is accepted.

Every variant is generated at test time from the real UCI file. Each bad one goes through `pm25 validate`
and `pm25 run` against a home that holds an earlier successful run: the complete listing of its data/ and models/
(names and sha256) must stay the same, the quarantine in data/rejected/ aside, which holds the refused file.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from pm25.cli import main
from tasks.data.ingest import parse_csv

pytestmark = pytest.mark.usefixtures("prefect_server")

COLUMNS = ["No", "year", "month", "day", "hour", "pm2.5", "DEWP", "TEMP", "PRES", "cbwd", "Iws", "Is", "Ir"]
ROW = 100  # 0-based index among data rows: data row 101, 2010-01-05 04:00, pm2.5 observed


def cells(line: str) -> list[str]:
    return line.rstrip("\r\n").split(",")


def joined(values: list[str]) -> str:
    return ",".join(values) + "\r\n"


def with_cell(column: str, value: str) -> Callable[[str, list[str]], str]:
    def edit(header: str, rows: list[str]) -> str:
        row = cells(rows[ROW])
        row[COLUMNS.index(column)] = value
        return header + "".join(rows[:ROW]) + joined(row) + "".join(rows[ROW + 1:])

    return edit


def without_column(column: str) -> Callable[[str, list[str]], str]:
    index = COLUMNS.index(column)
    return lambda header, rows: "".join(joined(cells(line)[:index] + cells(line)[index + 1:]) for line in [header, *rows])


def pressure_in_pascal(header: str, rows: list[str]) -> str:
    row = cells(rows[ROW])
    row[COLUMNS.index("PRES")] = str(float(row[COLUMNS.index("PRES")]) * 100)
    return header + "".join(rows[:ROW]) + joined(row) + "".join(rows[ROW + 1:])


def duplicate_hour(header: str, rows: list[str]) -> str:
    twin = cells(rows[ROW])
    twin[COLUMNS.index("pm2.5")] = str(float(twin[COLUMNS.index("pm2.5")]) + 50)
    return header + "".join(rows[:ROW + 1]) + joined(twin) + "".join(rows[ROW + 1:])


def never_observed(header: str, rows: list[str]) -> str:
    index = COLUMNS.index("pm2.5")
    return header + "".join(joined([*cells(line)[:index], "NA", *cells(line)[index + 1:]]) for line in rows)


# name → (how to break the file, as bytes from (header, rows); fragments the message must hold)
BAD_INPUTS: dict[str, tuple[Callable[[str, list[str]], str | bytes], list[str]]] = {
    "missing column": (without_column("PRES"), ["required column(s) ['PRES'] missing"]),
    "renamed column": (lambda h, r: h.replace("pm2.5", "pm25") + "".join(r), ["required column(s) ['pm2.5'] missing"]),
    "non-numeric text": (with_cell("TEMP", "warm"), ["column 'TEMP' holds non-numeric text", "rows [101]", "'warm'"]),
    "negative pm2.5": (with_cell("pm2.5", "-5"), ["expect_column_values_to_be_between", "'pm2.5'", "rows [101]"]),
    "absurd pm2.5": (with_cell("pm2.5", "99999"), ["expect_column_values_to_be_between", "'pm2.5'", "rows [101]"]),
    "pressure in Pa": (pressure_in_pascal, ["expect_column_values_to_be_between", "'PRES'", "rows [101]"]),
    "unknown wind code": (with_cell("cbwd", "SW"), ["expect_column_values_to_be_in_set", "'cbwd'", "rows [101]"]),
    "impossible hour": (with_cell("hour", "24"), ["expect_column_values_to_be_between", "'hour'", "rows [101]"]),
    "impossible date": (with_cell("day", "32"), ["expect_column_values_to_be_between", "'day'", "rows [101]"]),
    "same hour twice": (duplicate_hour, ["expect_column_values_to_be_unique", "'timestamp'", "rows [101, 102]"]),
    "empty file": (lambda h, r: "", ["the file is empty"]),
    "header without rows": (lambda h, r: h, ["the header has no data rows"]),
    "truncated last row": (lambda h, r: h + "".join(r[:-1]) + r[-1][:20], ["row(s) [43824] have 6 field(s) where the header has 13"]),
    "semicolon delimiter": (lambda h, r: (h + "".join(r)).replace(",", ";"), ["looks delimited by ';'"]),
    "not text": (lambda h, r: (h + "".join(r[:50])).encode("utf-16"), ["not UTF-8 text"]),
    "target never observed": (never_observed, ["no station is left to forecast", "station US_Embassy",
                                               "expect_column_values_to_not_be_null", "'pm25'"]),
    "too little data": (lambda h, r: h + "".join(r[: 2 * 8760]), ["expect_table_row_count_to_be_between", "observed 17520"]),
}


def write_variant(real_lines: list[str], path: Path, edit) -> Path:
    content = edit(real_lines[0], real_lines[1:])
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def snapshot(home: Path) -> dict[str, str]:
    """sha256 of every file under data/ (the quarantine aside) and models/, of the run reports and the forecast,
    and where latest points."""
    kept = [path for folder in ("data", "models", "reports/runs", "reports/forecast")
            for path in sorted((home / folder).rglob("*"))
            if path.is_file() and not path.is_relative_to(home / "data" / "rejected")]
    digest = {str(path.relative_to(home)): hashlib.sha256(path.read_bytes()).hexdigest() for path in kept}
    digest["reports/latest ->"] = str((home / "reports" / "latest").resolve())
    return digest


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_refused_clearly_and_changes_nothing(case, trained_home, real_lines, tmp_path, capfd):
    home, _ = trained_home
    edit, fragments = BAD_INPUTS[case]
    source = write_variant(real_lines, tmp_path / f"{case.replace(' ', '_')}.csv", edit)
    before = snapshot(home)
    for command in ("validate", "run"):
        status = main([command, "--source", str(source), "--home", str(home), "--max-epochs", "1", "--download-retries", "0"]
                      if command == "run" else [command, "--source", str(source), "--home", str(home)])
        err = capfd.readouterr().err
        assert status == 1, f"pm25 {command} accepted {case}"
        message = err[err.index(f"pm25 {command}: "):]
        assert message.startswith(f"pm25 {command}: {source}"), message
        for fragment in fragments:
            assert fragment in message, (fragment, message)
        assert "Traceback" not in err
        assert "Quarantined" in message, message
    after = snapshot(home)
    assert after == before, f"{case} changed {sorted(set(after.items()) ^ set(before.items()))}"
    refusal = json.loads((home / "data" / "rejected" / hashlib.sha256(source.read_bytes()).hexdigest() /
                          "refusal.json").read_text())
    assert refusal["origin"] == str(source) and fragments[-1] in refusal["message"]
    assert (home / "data" / "rejected" / refusal["sha256"] / source.name).read_bytes() == source.read_bytes()


@pytest.mark.parametrize(("case", "suite"), [("pressure in Pa", "pm25_raw"), ("missing column", "pm25_structure"),
                                           ("non-numeric text", "pm25_structure"), ("truncated last row", "pm25_structure"),
                                           ("not text", "pm25_structure")])
def test_data_docs_show_the_failure(case, suite, trained_home, real_lines, tmp_path, capfd):
    home, _ = trained_home
    source = write_variant(real_lines, tmp_path / "bad.csv", BAD_INPUTS[case][0])
    assert main(["validate", "--source", str(source), "--home", str(home)]) == 1
    docs = Path(re.search(r"Data Docs: (\S+)", capfd.readouterr().err).group(1)).parent
    assert docs.is_relative_to(home / "reports" / "data_quality")
    summary = json.loads((docs / "summary.json").read_text())
    assert summary["source"] == str(source) and not summary["passed"]
    failed = summary["failed_critical"][0]
    newest = max((docs / "validations").rglob("*.html"), key=lambda page: page.stat().st_mtime)
    page = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", newest.read_text()))
    assert f"Expectation Suite: {suite} Data asset: None Status: Failed" in page
    assert failed["column"] is None or failed["column"] in page


# Unusual but valid: each must parse to exactly the table the real file gives.
def lf_line_ends(header, rows):
    return (header + "".join(rows)).replace("\r\n", "\n")


def byte_order_mark(header, rows):
    return "\ufeff" + header + "".join(rows)


def quoted_fields(header, rows):
    return "".join(",".join(f'"{cell}"' for cell in cells(line)) + "\r\n" for line in [header, *rows])


def extra_column(header, rows):
    return "".join(line.rstrip("\r\n") + f",{'station' if i == 0 else 'US Embassy'}\r\n" for i, line in enumerate([header, *rows]))


def empty_cells_for_na(header, rows):
    return header + "".join(line.replace(",NA,", ",,") for line in rows)


def rows_out_of_order(header, rows):
    shuffled = rows[:-1] + [rows[-1] if rows[-1].endswith("\r\n") else rows[-1] + "\r\n"]
    random.Random(0).shuffle(shuffled)
    return header + "".join(shuffled)


VALID_VARIANTS = [lf_line_ends, byte_order_mark, quoted_fields, extra_column, empty_cells_for_na, rows_out_of_order]


@pytest.fixture(scope="module")
def reference(real_csv) -> pd.DataFrame:
    return parse_csv(real_csv.read_bytes(), "real.csv")


@pytest.mark.parametrize("variant", VALID_VARIANTS, ids=lambda variant: variant.__name__)
def test_unusual_but_valid_input_is_accepted(variant, reference, real_lines, caplog):
    content = variant(real_lines[0], real_lines[1:])
    parsed = parse_csv(content.encode("utf-8"), f"{variant.__name__}.csv")
    comparable = ["timestamp", *COLUMNS]
    pd.testing.assert_frame_equal(parsed[comparable], reference[comparable])
    if variant is extra_column:
        assert "ignoring extra column(s) ['station']" in caplog.text


def test_a_valid_variant_passes_the_whole_validation(real_lines, tmp_path):
    source = write_variant(real_lines, tmp_path / "unusual.csv", lambda h, r: byte_order_mark(h, r).replace("\r\n", "\n"))
    assert main(["validate", "--source", str(source), "--home", str(tmp_path / "home")]) == 0
