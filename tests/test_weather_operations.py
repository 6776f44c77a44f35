"""Operations with a weather feed: `pm25 forecast --weather` issues the weather model's forecast and names the issue it
read; a stale issue, a feed that is down, a backtest's replay track given as a feed and a station missing from the feed
fall back to `lstm` with a warning, never a failed run."""

from __future__ import annotations

import json
import shutil
import socket

import pandas as pd
import pytest

from flows.forecast import forecast_pm25
from tasks.core.records import Dataset
from tasks.core.weather import WEATHER_COLUMNS, WeatherFeed
from tasks.model.predict import load_saved_model, model_features, weather_decisions

pytestmark = pytest.mark.usefixtures("prefect_server")
ORIGIN = pd.Timestamp("2014-12-31T23:00:00+08:00")  # the real file's last hour: the forecast's origin


def forecast_file(path, issued_hours_before: float, station: str = "US_Embassy"):
    """One issue of the next 72 hours from `issued_hours_before` the origin, in plausible winter weather."""
    issued = ORIGIN - pd.Timedelta(hours=issued_hours_before)
    rows = [{"station": station, "issued_at": issued.isoformat(), "valid_at": (issued + pd.Timedelta(hours=lead)).isoformat(),
             "temperature": -3.0, "dew_point": -15.0, "pressure": 1030.0, "wind_speed": 4.0, "wind_direction": 330.0,
             "precipitation": 0.0} for lead in range(1, 73)]
    pd.DataFrame(rows, columns=list(WEATHER_COLUMNS)).to_csv(path, index=False)
    return path


@pytest.fixture()
def home(trained_home, tmp_path):
    """A copy of the shared run's home: its champion has a calibrated weather model."""
    copied = tmp_path / "home"
    shutil.copytree(trained_home[0], copied)
    return copied


def published(home) -> tuple[dict, pd.DataFrame]:
    folder = home / "reports" / "forecast"
    return json.loads((folder / "latest.json").read_text()), pd.read_csv(folder / "latest.csv")


def test_a_fresh_forecast_file_makes_the_forecast_the_weather_models_naming_the_issue(home, real_csv, tmp_path):
    weather = forecast_file(tmp_path / "weather.csv", issued_hours_before=6)
    result = forecast_pm25(source=str(real_csv), home=str(home), weather=str(weather))
    payload, table = published(home)
    assert payload["models"] == {"US_Embassy": "lstm_wx"} and payload["weather_fallbacks"] == {}
    assert set(table["model"]) == {"lstm_wx"}
    assert set(table["weather_issued_at"]) == {(ORIGIN - pd.Timedelta(hours=6)).tz_convert("UTC").isoformat()}
    assert result["origin"] == ORIGIN.isoformat() and len(table) == 24


@pytest.mark.parametrize(("weather", "reason"), [
    ("stale", "was issued 30.0 h before the origin, more than 18 h"),
    ("down", "the weather feed failed"),
    ("perfect", "--weather perfect is a backtest's replay of the weather, not a forecast feed"),
])
def test_a_stale_issue_a_feed_that_is_down_or_a_replay_track_falls_back_to_lstm(home, real_csv, tmp_path, caplog,
                                                                                weather, reason):
    if weather == "stale":
        source = str(forecast_file(tmp_path / "weather.csv", issued_hours_before=30))
    elif weather == "perfect":
        source = weather
    else:
        with socket.socket() as unused:  # a port nothing listens on: the feed is down
            unused.bind(("127.0.0.1", 0))
            source = f"http://127.0.0.1:{unused.getsockname()[1]}/forecast.csv"
    forecast_pm25(source=str(real_csv), home=str(home), weather=source, download_retries=0)
    payload, table = published(home)
    assert set(table["model"]) == {"lstm"} and table["weather_issued_at"].isna().all()
    assert reason in payload["weather_fallbacks"]["US_Embassy"]
    assert any(reason in record.getMessage() for record in caplog.records if record.levelname == "WARNING")


def test_a_station_missing_from_the_feed_alone_falls_back(trained_home, tmp_path):
    home, result = trained_home
    model_dir = home / "models" / json.loads((home / "models" / "registry.json").read_text())["versions"][0]["model_dir"]
    features = model_features(Dataset.load(result["dataset"]), load_saved_model(model_dir))
    features["Elsewhere"] = features["US_Embassy"]  # a second station the feed does not hold
    table = pd.read_csv(forecast_file(tmp_path / "weather.csv", issued_hours_before=3))
    for column in ("issued_at", "valid_at"):
        table[column] = pd.to_datetime(table[column], utc=True)
    table.to_parquet(tmp_path / "weather.parquet")
    decisions = weather_decisions(model_dir, features, WeatherFeed(tmp_path / "weather.parquet", 18), 24)
    assert decisions["US_Embassy"][2] is None and decisions["US_Embassy"][0] is not None
    assert decisions["Elsewhere"][0] is None and "no rows for station Elsewhere" in decisions["Elsewhere"][2]
