"""A real weather forecast feed: Open-Meteo's forecast API (no key), at every station with a known location
(expectations/station_locations.json), written in the `weather_forecast` layout and then checked and stored like any
forecast file (`tasks/data/weather.py`).

One request asks for every located station's hourly 2 m temperature and dew point, surface pressure, 10 m wind speed
(m/s) and direction, and precipitation, from one model (ECMWF's IFS at 0.25°, `OPEN_METEO_MODEL`); Open-Meteo answers
with one JSON object per location, its hours in GMT. The issue time is when Open-Meteo made that model's newest run
available, from its model metadata (`/data/<model>/static/meta.json`, `last_run_availability_time`): an origin before
then could not have read it. Hours before the issue time (the response starts at 00:00 of the day) are left out.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from urllib.parse import urlencode

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from tasks.core import storage
from tasks.core.errors import SourceError
from tasks.core.home import HomeFolders
from tasks.core.settings import SourceSettings
from tasks.core.weather import WEATHER_COLUMNS
from tasks.data.sources import FetchedSource, is_transient_failure, read_source_bytes

OPEN_METEO = "open-meteo"  # the value of PM25_WEATHER / --weather that selects this feed
OPEN_METEO_MODEL = "ecmwf_ifs025"
FORECAST_DAYS = 3
# Open-Meteo's hourly variables, by the layout's column they fill.
HOURLY = {"temperature": "temperature_2m", "dew_point": "dew_point_2m", "pressure": "surface_pressure",
          "wind_speed": "wind_speed_10m", "wind_direction": "wind_direction_10m", "precipitation": "precipitation"}
LOCATIONS_FILE = "station_locations.json"

log = logging.getLogger(__name__)


def located_stations(stations: list[str], expectations_dir: Path) -> dict[str, tuple[float, float]]:
    """(latitude, longitude) of each of `stations` with a known location; the others get no weather forecast."""
    path = expectations_dir / LOCATIONS_FILE
    known = storage.read_json(path)["stations"] if path.exists() else {}
    return {station: (float(known[station][1]), float(known[station][0])) for station in stations if station in known}


def forecast_url(base_url: str, locations: dict[str, tuple[float, float]]) -> str:
    query = {"latitude": ",".join(f"{lat:.4f}" for lat, _ in locations.values()),
             "longitude": ",".join(f"{lon:.4f}" for _, lon in locations.values()),
             "hourly": ",".join(HOURLY.values()), "models": OPEN_METEO_MODEL, "wind_speed_unit": "ms",
             "timezone": "GMT", "forecast_days": FORECAST_DAYS}
    return f"{base_url.rstrip('/')}/v1/forecast?{urlencode(query)}"


def metadata_url(base_url: str) -> str:
    return f"{base_url.rstrip('/')}/data/{OPEN_METEO_MODEL}/static/meta.json"


def layout_table(answer: list[dict] | dict, stations: list[str], issued_at: pd.Timestamp) -> pd.DataFrame:
    """Open-Meteo's answer (one object per location, in the order asked) as the layout's rows, from the issue on."""
    answers = answer if isinstance(answer, list) else [answer]
    if len(answers) != len(stations):
        raise SourceError(f"Open-Meteo answered for {len(answers)} location(s), {len(stations)} asked")
    frames = []
    for station, item in zip(stations, answers):
        hourly = item["hourly"]
        offset = pd.Timedelta(seconds=item.get("utc_offset_seconds", 0))
        valid_at = pd.to_datetime(hourly["time"]).tz_localize("UTC") - offset
        frame = pd.DataFrame({"station": station, "issued_at": issued_at, "valid_at": valid_at,
                              **{column: pd.to_numeric(pd.Series(hourly[name]), errors="coerce").to_numpy()
                                 for column, name in HOURLY.items()}})
        frames.append(frame[frame["valid_at"] >= issued_at])
    return pd.concat(frames, ignore_index=True)[list(WEATHER_COLUMNS)]


def fetch_open_meteo(stations: list[str], expectations_dir: Path, cache_dir: Path, base_url: str,
                     timeout_seconds: float) -> FetchedSource:
    """Ask Open-Meteo for the located stations' forecast and keep it, in the layout, as a CSV in `cache_dir` (by its
    sha256), ready to be checked and stored like a forecast file."""
    locations = located_stations(stations, expectations_dir)
    if not locations:
        raise SourceError(f"{OPEN_METEO}: none of the stations {stations} has a location in "
                          f"{expectations_dir / LOCATIONS_FILE}")
    metadata = json.loads(read_source_bytes(metadata_url(base_url), timeout_seconds))
    issued_at = pd.Timestamp(metadata["last_run_availability_time"], unit="s", tz="UTC")
    answer = json.loads(read_source_bytes(forecast_url(base_url, locations), timeout_seconds))
    table = layout_table(answer, list(locations), issued_at)
    for column in ("issued_at", "valid_at"):
        table[column] = table[column].map(pd.Timestamp.isoformat)
    buffer = io.StringIO()
    table.to_csv(buffer, index=False)
    data = buffer.getvalue().encode()
    sha256 = storage.sha256_bytes(data)
    destination = cache_dir / f"{sha256}.csv"
    if not destination.exists():
        storage.write_bytes(destination, data)
    log.info("Open-Meteo (%s) forecast issued %s for %d station(s)%s", OPEN_METEO_MODEL, issued_at.isoformat(),
             len(locations), "" if len(locations) == len(stations) else
             f"; no location for {sorted(set(stations) - set(locations))}")
    return FetchedSource(path=destination, sha256=sha256,
                         origin=f"{OPEN_METEO}:{OPEN_METEO_MODEL}:{issued_at.strftime('%Y%m%dT%H%MZ')}.csv")


@task(cache_policy=NO_CACHE, name="fetch-open-meteo", task_run_name="fetch Open-Meteo's forecast")
def open_meteo_task(stations: list[str], folders: HomeFolders, sources: SourceSettings, base_url: str) -> FetchedSource:
    """I/O only: retried with backoff and jitter on transient failures (see `with_retries`)."""
    return fetch_open_meteo(stations, sources.expectations_dir, folders.source_cache, base_url,
                            sources.download_timeout_seconds)


def open_meteo_with_retries(retries: int, base_delay_seconds: float):
    return open_meteo_task.with_options(retries=retries, retry_delay_seconds=exponential_backoff(base_delay_seconds),
                                        retry_jitter_factor=0.5, retry_condition_fn=is_transient_failure)
