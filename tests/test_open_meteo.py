"""The Open-Meteo connector against a local HTTP server that answers in the service's documented formats (the forecast
API's JSON, one object per location, and the model metadata's meta.json): these machines cannot reach the service, so
the live call is not exercised here."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pandas as pd
import pytest

from tasks.core.errors import SourceError
from tasks.core.settings import PROJECT_ROOT
from tasks.data.open_meteo import HOURLY, OPEN_METEO_MODEL, fetch_open_meteo
from tasks.data.weather import store_weather

EXPECTATIONS = PROJECT_ROOT / "expectations"
AVAILABLE = pd.Timestamp("2026-12-03T07:40:00Z")  # when the newest run was made available


class FakeOpenMeteo(BaseHTTPRequestHandler):
    """Answers /v1/forecast with hourly series from 00:00 GMT of the day for each asked location, and the model's
    meta.json; records the queries it was sent."""

    queries: list[dict] = []
    status = 200

    def do_GET(self) -> None:  # noqa: N802  (http.server's name)
        url = urlparse(self.path)
        query = parse_qs(url.query)
        FakeOpenMeteo.queries.append({"path": url.path, **query})
        if self.status != 200:
            self.send_error(self.status)
            return
        if url.path == f"/data/{OPEN_METEO_MODEL}/static/meta.json":
            body = {"crs_wkt": "GEOGCRS[...]", "data_end_time": 1796774400, "last_run_initialisation_time":
                    int((AVAILABLE - pd.Timedelta(hours=7, minutes=40)).timestamp()),
                    "last_run_availability_time": int(AVAILABLE.timestamp()),
                    "last_run_modification_time": int(AVAILABLE.timestamp()) - 60,
                    "temporal_resolution_seconds": 3600, "update_interval_seconds": 21600}
        elif url.path == "/v1/forecast":
            times = pd.date_range("2026-12-03T00:00", periods=24 * int(query["forecast_days"][0]), freq="h")
            hourly = {"time": [stamp.strftime("%Y-%m-%dT%H:%M") for stamp in times],
                      **{name: [round(-2.0 + 0.1 * index, 1) if "temperature" in name or "dew" in name else
                                1021.3 if "pressure" in name else 270.0 if "direction" in name else
                                0.0 if "precipitation" in name else 3.4 for index in range(len(times))]
                         for name in query["hourly"][0].split(",")}}
            units = {"time": "iso8601", **{name: "?" for name in query["hourly"][0].split(",")}}
            body = [{"latitude": float(lat), "longitude": float(lon), "generationtime_ms": 0.4, "utc_offset_seconds": 0,
                     "timezone": "GMT", "timezone_abbreviation": "GMT", "elevation": 50.0, "hourly_units": units,
                     "hourly": hourly}
                    for lat, lon in zip(query["latitude"][0].split(","), query["longitude"][0].split(","))]
            body = body if len(body) > 1 else body[0]  # one location: one object, as the service answers
        else:
            self.send_error(404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *arguments) -> None:
        pass


@pytest.fixture()
def open_meteo() -> Iterator[str]:
    FakeOpenMeteo.queries, FakeOpenMeteo.status = [], 200
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenMeteo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_the_feed_asks_for_every_located_station_and_is_stored_in_the_layout(open_meteo, tmp_path):
    stations = ["Dongsi", "Shunyi", "Elsewhere"]  # Elsewhere has no known location
    fetched = fetch_open_meteo(stations, EXPECTATIONS, tmp_path / "source", open_meteo, 10)
    forecast_query = next(query for query in FakeOpenMeteo.queries if query["path"] == "/v1/forecast")
    assert forecast_query["latitude"] == ["39.9290,40.1270"] and forecast_query["longitude"] == ["116.4170,116.6550"]
    assert set(forecast_query["hourly"][0].split(",")) == set(HOURLY.values())
    assert forecast_query["wind_speed_unit"] == ["ms"] and forecast_query["models"] == [OPEN_METEO_MODEL]
    stored = store_weather(fetched, tmp_path / "weather", stations, EXPECTATIONS, tmp_path / "docs")
    table = pd.read_parquet(stored.path)
    assert stored.stations == ("Dongsi", "Shunyi") and stored.newest_issue == AVAILABLE.isoformat()
    # The hours before the issue (the answer starts at 00:00 GMT) are left out: from 08:00 on, 3 days' hours.
    assert table["valid_at"].min() == pd.Timestamp("2026-12-03T08:00Z") and len(table) == 2 * (72 - 8)
    assert (table["issued_at"] == AVAILABLE).all() and (table["wind_speed"] == 3.4).all()


def test_a_single_station_is_answered_with_one_object(open_meteo, tmp_path):
    fetched = fetch_open_meteo(["Dongsi"], EXPECTATIONS, tmp_path / "source", open_meteo, 10)
    table = pd.read_csv(fetched.path)
    assert set(table["station"]) == {"Dongsi"} and len(table) == 72 - 8


def test_a_feed_that_answers_with_errors_is_refused_or_retried(open_meteo, tmp_path):
    from tasks.core.errors import SourceUnavailable

    FakeOpenMeteo.status = 503
    with pytest.raises(SourceUnavailable, match="HTTP 503"):
        fetch_open_meteo(["Dongsi"], EXPECTATIONS, tmp_path / "source", open_meteo, 10)
    with pytest.raises(SourceError, match="none of the stations"):
        fetch_open_meteo(["Elsewhere"], EXPECTATIONS, tmp_path / "source", open_meteo, 10)
