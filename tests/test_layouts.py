"""File layouts: recognised from the header, refused by name, mapped onto the canonical table."""

import pytest

from tasks.core.errors import DataError
from tasks.data.dataset import to_canonical
from tasks.data.file_layouts import known_layouts, recognise_layout
from tasks.data.ingest import EXPECTATIONS_DIR, parse_csv
from tests.conftest import MULTISITE_COLUMNS, UCI_COLUMNS, csv_bytes, multisite_frame, uci_frame


def test_both_uci_layouts_are_recognised_from_their_headers():
    assert recognise_layout(UCI_COLUMNS, "a.csv", EXPECTATIONS_DIR).name == "uci_embassy"
    assert recognise_layout(MULTISITE_COLUMNS, "b.csv", EXPECTATIONS_DIR).name == "uci_multisite"
    assert recognise_layout(["extra", *reversed(MULTISITE_COLUMNS)], "c.csv", EXPECTATIONS_DIR).name == "uci_multisite"


def test_a_header_of_no_known_layout_is_refused_naming_the_layouts_and_the_columns_found():
    with pytest.raises(DataError) as refusal:
        recognise_layout(["date", "value", "site"], "other.csv", EXPECTATIONS_DIR)
    message = str(refusal.value)
    assert message.startswith("other.csv: no known file layout matches its header (rule: known layout)")
    assert "['date', 'value', 'site']" in message
    for layout in known_layouts(EXPECTATIONS_DIR):
        assert layout.name in message


def test_a_layout_missing_some_columns_is_refused_naming_them():
    with pytest.raises(DataError, match=r"required column\(s\) \['WSPM'\] missing \(rule: required columns of layout "
                                        r"uci_multisite\)"):
        recognise_layout([column for column in MULTISITE_COLUMNS if column != "WSPM"], "b.csv", EXPECTATIONS_DIR)


def test_every_layout_declares_canonical_pm25_a_wind_direction_and_its_suites():
    for layout in known_layouts(EXPECTATIONS_DIR):
        canonical = set(layout.canonical_names.values())
        assert {"pm25", "wind_dir", "temp", "pres", "dewp"} <= canonical, layout.name
        assert (EXPECTATIONS_DIR / layout.suite).is_file() and (EXPECTATIONS_DIR / layout.structure_suite).is_file()


def test_both_layouts_map_onto_the_same_canonical_columns():
    layouts = {layout.name: layout for layout in known_layouts(EXPECTATIONS_DIR)}
    embassy = to_canonical(parse_csv(csv_bytes(uci_frame(3)), "e.csv"), layouts["uci_embassy"], "US_Embassy")
    station = to_canonical(parse_csv(csv_bytes(multisite_frame(3, "Dongsi")), "d.csv"), layouts["uci_multisite"], "Dongsi")
    shared = {"station", "timestamp", "pm25", "dewp", "temp", "pres", "wind_dir"}
    assert shared <= set(embassy.columns) and shared <= set(station.columns)
    assert {"pm10", "so2", "no2", "co", "o3", "rain", "wind_speed"} <= set(station.columns) - set(embassy.columns)
    assert embassy["station"].unique().tolist() == ["US_Embassy"] and station["station"].unique().tolist() == ["Dongsi"]
    assert str(station["timestamp"].dtype).endswith("Asia/Shanghai]")
