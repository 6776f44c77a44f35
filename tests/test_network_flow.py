"""The real training flow on the nine real station files of the multi-site data (one epoch)."""

import json
from pathlib import Path

import pandas as pd
import pytest

from flows.forecast import forecast_pm25
from pm25.cli import main
from tasks.core.air_quality import CATEGORY_NAMES
from tasks.core.calibration import read_day_maps, read_intervals
from tasks.core.hours import REPORTED_HORIZONS
from tasks.core.weather import ISSUED_TRACK
from tasks.scoring.evaluate import MODELS

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]
NINE = ["Aotizhongxin", "Changping", "Dingling", "Dongsi", "Guanyuan", "Gucheng", "Huairou", "Nongzhanguan", "Shunyi"]
# Persistence pooled over the nine stations on the observed hours of the last 365 days, measured independently.
PERSISTENCE = {1: 19.31, 3: 38.12, 6: 54.62, 12: 72.29, 24: 87.84}


def test_every_station_is_kept_and_scored_on_the_same_test_span(network_home):
    home, result = network_home
    assert result["stations"] == NINE and result["left_out"] == {}
    metrics = json.loads((home / "reports" / "latest" / "metrics.json").read_text())
    assert metrics["test_start"].startswith("2016-03-01T00:00") and metrics["test_end"].startswith("2017-02-28T23:00")
    # Every model, the weather model fed the station files' weather (no forecast file given: no `lstm_wx` as issued).
    assert set(metrics["models"]) == set(MODELS) - {ISSUED_TRACK} and set(metrics["stations"]) == set(NINE)
    for horizon, rmse in PERSISTENCE.items():
        assert metrics["models"]["persistence"][f"h{horizon}"]["rmse"] == pytest.approx(rmse, abs=0.005)
    for horizon in REPORTED_HORIZONS:
        pooled = {name: scores[f"h{horizon}"]["n"] for name, scores in metrics["models"].items()}
        assert len(set(pooled.values())) == 1
        per_station = sum(entry["models"]["lstm"][f"h{horizon}"]["n"] for entry in metrics["stations"].values())
        assert per_station == pooled["lstm"] > 9 * 8000
    assert 0.5 < metrics["intervals"]["coverage_80"] < 1
    assert all(0.5 < entry["intervals"]["coverage_80"] < 1 for entry in metrics["stations"].values())
    assert len(metrics["intervals"]["coverage_by_size_fifth"]) == 5


def test_report_forecast_and_registry_cover_every_station(network_home):
    home, result = network_home
    report = (home / "reports" / "latest" / "report.md").read_text()
    for station in NINE:
        assert f"| {station} |" in report
    assert "lstm_station" in report and Path(home / "reports" / "latest" / "forecast.png").is_file()
    table = pd.read_csv(home / "reports" / "forecast" / "latest.csv")
    assert sorted(table["station"].unique()) == NINE and len(table) == 9 * 24
    assert (table["lower_80"] <= table["upper_80"]).all()  # by level, an interval need not hold its forecast
    registry = json.loads((home / "models" / "registry.json").read_text())
    network = Path(result["model"]).parent
    assert registry["versions"][0]["stations"] == NINE and set(read_intervals(network)) == set(NINE)
    assert set(read_day_maps(network)) == set(NINE)
    latest = json.loads((home / "reports" / "forecast" / "latest.json").read_text())
    assert set(latest["category_24h"]) == set(NINE) and set(latest["category_24h"].values()) <= set(CATEGORY_NAMES)
    assert json.loads((network / "network.json").read_text()) == {
        "stations": NINE, "shared_features": ["pm25_z", "pm25_change_1h", "dewp_change_3h", "pres_change_3h", "wind_speed"],
        "station_one_hot": True}


def test_forecast_flow_and_models_command_show_the_stations(network_home, multisite_dir, capsys):
    home, _ = network_home
    result = forecast_pm25(source=str(multisite_dir), home=str(home))
    assert result["stations"] == NINE and result["origin"] == "2017-02-28T23:00:00+08:00"
    assert Path(result["map"]) == home / "reports" / "forecast" / "latest_map.png" and Path(result["map"]).is_file()
    assert main(["models", "--home", str(home)]) == 0
    assert capsys.readouterr().out.startswith(f"champion v1 forecasts: {', '.join(NINE)}")
