"""The forecast flow: the champion's next 24 hours from the newest validated data."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flows.forecast import forecast_pm25
from pm25.cli import main
from tasks.core.calibration import DayMeanMap, IntervalTable, write_intervals
from tasks.core.errors import RegistryError
from tasks.core.records import ModelVersion
from tasks.operate.registry import champion
from tasks.publish.forecast import LABEL_SIDES, champion_intervals, day_categories, label_sides, plot_forecast_map

pytestmark = pytest.mark.usefixtures("prefect_server")


def test_forecast_flow_writes_the_champions_next_24_hours(trained_home, real_csv):
    home, _ = trained_home
    result = forecast_pm25(source=str(real_csv), home=str(home))
    payload = json.loads(Path(result["json"]).read_text())
    table = pd.read_csv(result["csv"])
    assert payload["model_version"] == champion(home / "models").version == result["model_version"]
    assert payload["origin"] == "2014-12-31T23:00:00+08:00" and payload["origin_observed"] == {"US_Embassy": True}
    assert payload["stations"] == result["stations"] == ["US_Embassy"] and set(table["station"]) == {"US_Embassy"}
    times = pd.to_datetime(table["target_time"])
    assert len(table) == 24 and times.iloc[0] == pd.Timestamp("2015-01-01T00:00:00+08:00")
    assert (times.diff().dropna() == pd.Timedelta(hours=1)).all()
    assert (table["lower_80"] <= table["upper_80"]).all()  # by level, an interval need not hold its forecast
    assert (table["lower_80"] >= 0).all()
    assert [row["pm25"] for row in payload["forecasts"]] == table["pm25"].tolist()
    assert Path(result["plot"]).read_bytes().startswith(b"\x89PNG")
    assert result["map"] is None and not (home / "reports" / "forecast" / "latest_map.png").exists()  # one station


def test_forecast_command_prints_the_next_24_hours_and_where_the_files_are(trained_home, real_csv, capsys):
    home, _ = trained_home
    assert main(["forecast", "--source", str(real_csv), "--home", str(home)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("PM2.5 forecast from 2014-12-31T23:00:00+08:00 by model v") and lines[1] == "US_Embassy (lstm):"
    assert [line.split()[:3] for line in lines[2:4]] == [["2015-01-01", "00:00", "+1"], ["2015-01-01", "01:00", "+2"]]
    assert len(lines) == 27 and lines[-1].startswith("files: ") and "latest.csv" in lines[-1]


def test_forecast_without_a_champion_says_so(real_csv, tmp_path, capsys):
    assert main(["forecast", "--source", str(real_csv), "--home", str(tmp_path)]) == 1
    assert "no champion model yet; run the train-pm25 flow first" in capsys.readouterr().err
    assert not (tmp_path / "reports" / "forecast").exists()


def _version(model_dir: str, interval_offsets: dict) -> ModelVersion:
    return ModelVersion(version=3, model_dir=model_dir, model_sha256="", registered_at="", run_id="", source_sha256="",
                        code_version="", settings={}, test_rmse={}, challenge={}, interval_offsets=interval_offsets)


def test_a_champion_registered_before_the_model_folder_kept_its_intervals_uses_its_registry_offsets(tmp_path):
    earlier = _version("old", {"US_Embassy": {"lower": [-4.0], "upper": [6.0]}})
    assert champion_intervals(tmp_path, earlier) == {"US_Embassy": IntervalTable([[]], [[-4.0]], [[6.0]])}
    table = IntervalTable([[30.0]], [[-5.0, -20.0]], [[8.0, 40.0]])
    write_intervals(tmp_path / "old", {"US_Embassy": table})  # scored again by a later run: the folder's tables
    assert champion_intervals(tmp_path, earlier) == {"US_Embassy": table}
    with pytest.raises(RegistryError, match="has no 80 % intervals"):
        champion_intervals(tmp_path, _version("unscored", {}))


def _next_day(levels: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame([{"station": station, "horizon_hours": hour, "pm25": level, "model": "lstm"}
                         for station, level in levels.items() for hour in range(1, 25)])


def test_the_map_shows_the_stations_with_a_location_and_names_the_others(tmp_path):
    locations = {"North": (116.2, 40.3), "South": (116.4, 39.9)}
    path = tmp_path / "map.png"
    left_off = plot_forecast_map(_next_day({"North": 20.0, "South": 180.0, "Mine": 50.0}),
                                 {"North": 0, "South": 4, "Mine": 1}, locations, path, "map")
    assert left_off == ["Mine"] and path.read_bytes().startswith(b"\x89PNG")


def test_no_map_when_fewer_than_two_stations_have_a_location(tmp_path):
    path = tmp_path / "map.png"
    assert plot_forecast_map(_next_day({"North": 20.0, "Mine": 50.0}), {"North": 0, "Mine": 1}, {"North": (116.2, 40.3)},
                             path, "map") is None
    assert not path.exists()


def test_the_day_category_comes_from_the_champions_map_and_else_from_the_plain_mean():
    forecast = _next_day({"Mapped": 50.0, "Unmapped": 50.0})
    lowered = DayMeanMap([0.0, 60.0, 500.0], [0.0, 30.0, 500.0])  # forecast means of 60 were observed as 30
    assert day_categories(forecast, {"lstm": {"Mapped": lowered}}) == {"Mapped": 0, "Unmapped": 1}
    assert day_categories(forecast, {"lstm": None}) == {"Mapped": 1, "Unmapped": 1}
    short = forecast[forecast["horizon_hours"] <= 12]  # no full day: the plain mean's category
    assert day_categories(short, {"lstm": {"Mapped": lowered, "Unmapped": lowered}}) == {"Mapped": 1, "Unmapped": 1}
    # A station the weather model forecast reads the weather model's map.
    by_weather = forecast.assign(model=np.where(forecast["station"] == "Unmapped", "lstm_wx", "lstm"))
    assert day_categories(by_weather, {"lstm": None, "lstm_wx": {"Unmapped": lowered}}) == {"Mapped": 1, "Unmapped": 0}


def test_names_of_close_stations_go_on_different_sides():
    lon, lat = np.array([116.30, 116.31, 116.90]), np.array([39.90, 39.90, 40.40])
    sides = label_sides(lon, lat)
    assert sides[0] != sides[1] and sides[2] == 0 and all(0 <= side < len(LABEL_SIDES) for side in sides)
