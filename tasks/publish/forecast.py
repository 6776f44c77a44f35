"""Forecast: the champion model's next 24 hours at every station from the newest validated data, as JSON, CSV,
plot, map and artifact.

A saved model folder is self-contained (model.keras, network.json, preprocessing/<station>.json, windows.json,
training.json), so a forecast rebuilds the model's inputs from the validated dataset with the parameters fitted
when it was trained.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.core import storage
from tasks.core.air_quality import BREAKPOINTS, CATEGORY_NAMES
from tasks.core.calibration import (
    PLAIN_MEAN,
    DayMeanMap,
    IntervalTable,
    maps_key,
    read_day_maps,
    read_intervals,
    tables_key,
)
from tasks.core.errors import RegistryError
from tasks.core.home import next_hours_files, weather_model_dir
from tasks.core.hours import HOURS_PER_DAY
from tasks.core.records import ModelVersion
from tasks.core.states import finish
from tasks.core.weather import ISSUED_TRACK
from tasks.publish.rendering import image_data_uri, pyplot

FORECAST_DIR = "forecast"
NETWORK_MODEL = "lstm"  # the champion's own forecast, as a forecast's `model` column names it
LATEST_STEM = "latest"
HISTORY_HOURS_PLOTTED = 72  # the readings the plot shows before the forecast
STATION_LOCATIONS_FILE = "station_locations.json"
# The colours HJ 633-2012 gives China's daily categories (tasks.scoring.verify.CATEGORY_NAMES), and their ranges.
CATEGORY_COLOURS = ("#00e400", "#ffff00", "#ff7e00", "#ff0000", "#99004c", "#7e0023")
CATEGORY_RANGES = (*(f"{low}–{high}" for low, high in zip((0, *BREAKPOINTS), BREAKPOINTS)), f"> {BREAKPOINTS[-1]}")
# Where a station's name may go beside its marker: offset in points, alignment, and the spot's offset as a share
# of a label's extent (to judge overlaps in map units).
LABEL_SIDES = (((0, 11), "center", "bottom", (0, 1)), ((0, -11), "center", "top", (0, -1)),
               ((11, 0), "left", "center", (0.6, 0)), ((-11, 0), "right", "center", (-0.6, 0)))

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ForecastOutput:
    json_path: Path
    csv_path: Path
    plot_path: Path
    map_path: Path | None  # none when fewer than two of the stations have a known location
    origin: str
    model_version: int
    stations: list[str]
    cache_hit: bool = False


def with_intervals(raw: pd.DataFrame, intervals: dict[str, dict[str, IntervalTable]]) -> pd.DataFrame:
    """The model's forecast of the next hours (`tasks.model.predict.next_hours_forecast`) with each station's 80 %
    interval (of the model that made the station's forecast: `intervals` by model, then station), rounded to 0.1 µg/m³,
    and the model and weather issue behind every row."""
    frames = []
    for station, rows in raw.groupby("station", sort=False):
        forecast = rows["pm25"].to_numpy(dtype="float64")
        model = rows["model"].iloc[0] if "model" in rows else NETWORK_MODEL
        lower, upper = intervals[model][station].bounds(forecast)
        issued = rows["weather_issued_at"] if "weather_issued_at" in rows else pd.Series(pd.NaT, index=rows.index)
        frames.append(pd.DataFrame({
            "station": station,
            "target_time": rows["target_time"].to_numpy(),
            "horizon_hours": rows["horizon_hours"].to_numpy(),
            "pm25": forecast.round(1),
            "lower_80": lower.round(1),
            "upper_80": upper.round(1),
            "model": model,
            "weather_issued_at": issued.map(lambda stamp: None if pd.isna(stamp) else stamp.isoformat()).to_numpy(),
        }))
    return pd.concat(frames, ignore_index=True)


def plot_next_hours(history: dict[str, pd.DataFrame], forecast: pd.DataFrame, path: Path, title: str) -> Path:
    """The last days and the next hours at every station, one panel each."""
    plt = pyplot()
    stations = list(history)
    columns = min(3, len(stations))
    rows = -(-len(stations) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(max(9, 4.2 * columns), 3.8 if rows == 1 and columns == 1 else 2.6 * rows),
                                sharex=True, sharey=True, constrained_layout=True, squeeze=False)
    for axis in axes.ravel()[len(stations):]:
        axis.set_visible(False)
    for axis, station in zip(axes.ravel(), stations):
        own = forecast[forecast["station"] == station]
        axis.plot(history[station]["timestamp"], history[station]["target"], color="black", lw=1.2, label="observed")
        axis.fill_between(own["target_time"], own["lower_80"], own["upper_80"], color="tab:blue", alpha=0.2, lw=0,
                          label="80 % interval")
        axis.plot(own["target_time"], own["pm25"], color="tab:blue", marker="o", ms=2, label="forecast")
        axis.set_title(station, fontsize=9)
        axis.tick_params(axis="x", labelrotation=25, labelsize=7)
    axes[0][0].set_ylabel("PM2.5 (µg/m³)")
    axes[0][0].legend(loc="upper left", fontsize=7)
    figure.suptitle(title)
    storage.write_atomically(path, lambda tmp: figure.savefig(tmp, dpi=80, format="png"))
    plt.close(figure)
    return path


def station_locations(path: Path) -> dict[str, tuple[float, float]]:
    """Known stations' (longitude, latitude), from expectations/station_locations.json; none without the file."""
    if not path.exists():
        return {}
    return {station: (float(lon), float(lat)) for station, (lon, lat) in storage.read_json(path)["stations"].items()}


def day_categories(forecast: pd.DataFrame, maps: dict[str, dict[str, DayMeanMap] | None]) -> dict[str, int]:
    """The category issued for each station's next 24 hours: their mean forecast through the map of the model that
    made it (`maps` by model; `tasks.scoring.categories`); the plain mean's category where that model has no maps
    (registered before them) or the horizon is shorter than a day."""
    issued = {}
    for station, rows in forecast.groupby("station", sort=False):
        hours = rows.sort_values("horizon_hours")["pm25"].to_numpy(dtype="float64")[None, :]
        model_maps = maps.get(rows["model"].iloc[0]) or {}
        day_map = model_maps.get(station, PLAIN_MEAN) if hours.shape[1] >= HOURS_PER_DAY else PLAIN_MEAN
        issued[station] = int(day_map.issue(hours)[0])
    return issued


def plot_forecast_map(forecast: pd.DataFrame, categories: dict[str, int], locations: dict[str, tuple[float, float]],
                      path: Path, title: str) -> list[str] | None:
    """The mean forecast of the coming hours at every station with a known location, coloured by the daily
    category issued for it. Returns the stations left off for want of a location; None, and no map, when fewer
    than two stations have one."""
    from matplotlib.patches import Patch

    means = forecast.groupby("station", sort=False)["pm25"].mean()
    placed = [station for station in means.index if station in locations]
    if len(placed) < 2:
        return None
    left_off = [station for station in means.index if station not in locations]
    lon, lat = (np.array([locations[station][axis] for station in placed]) for axis in (0, 1))
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(9, 7), layout="constrained")
    levels = [categories[station] for station in placed]
    axis.scatter(lon, lat, s=280, c=[CATEGORY_COLOURS[level] for level in levels], edgecolors="black", linewidths=0.8,
                 zorder=2)
    for station, level, x, y, side in zip(placed, levels, lon, lat, label_sides(lon, lat)):
        offset, horizontal, vertical, _ = LABEL_SIDES[side]
        axis.annotate(f"{means[station]:.0f}", (x, y), ha="center", va="center", fontsize=7, zorder=3,
                      color="white" if level >= 3 else "black")
        axis.annotate(station, (x, y), xytext=offset, textcoords="offset points", ha=horizontal, va=vertical, fontsize=8)
    axis.set_aspect(1 / np.cos(np.radians(lat.mean())))  # a degree of longitude is shorter than one of latitude
    axis.margins(0.15)
    axis.set_xlabel("longitude (°E)")
    axis.set_ylabel("latitude (°N)")
    figure.legend(handles=[Patch(facecolor=colour, edgecolor="black", label=f"{name} ({bounds})")
                           for colour, name, bounds in zip(CATEGORY_COLOURS, CATEGORY_NAMES, CATEGORY_RANGES)],
                  loc="outside right upper", fontsize=7, title="category issued for the day (µg/m³)",
                  title_fontsize=7)
    axis.set_title(title, fontsize=10)
    if left_off:
        figure.text(0.01, 0.005, f"not on the map (no known location): {', '.join(left_off)}", fontsize=7)
    storage.write_atomically(path, lambda tmp: figure.savefig(tmp, dpi=80, format="png"))
    plt.close(figure)
    return left_off


def label_sides(lon: np.ndarray, lat: np.ndarray) -> list[int]:
    """For each station, the LABEL_SIDES entry its name takes. Stations are taken west to east; each name goes on
    the first side where it overlaps no marker and no name placed before it, else where it overlaps fewest. A
    label's extent is a rough share of the map's."""
    width, height = 0.2 * np.ptp(lon), 0.06 * np.ptp(lat)
    placed: list[tuple[float, float]] = []
    sides = [0] * len(lon)
    for index in np.argsort(lon, kind="stable"):
        spots = [(lon[index] + dx * width, lat[index] + dy * height) for *_, (dx, dy) in LABEL_SIDES]
        overlaps = [sum(abs(x - px) < width and abs(y - py) < height for px, py in placed)
                    + sum(abs(x - mx) < 0.6 * width and abs(y - my) < 0.6 * height for mx, my in zip(lon, lat))
                    for x, y in spots]
        sides[index] = int(np.argmin(overlaps))  # the first side without overlaps, if there is one
        placed.append(spots[sides[index]])
    return sides


def champion_intervals(models_dir: Path, version: ModelVersion) -> dict[str, IntervalTable]:
    """The champion's 80 % interval tables: beside its model, or in its registry entry where it was registered
    before the model folder kept them."""
    tables = read_intervals(models_dir / version.model_dir)
    if tables is not None:
        return tables
    if not version.interval_offsets:
        raise RegistryError(f"model v{version.version} ({models_dir / version.model_dir}) has no 80 % intervals: "
                            "run pm25 run again to score it")
    return {station: IntervalTable.from_json(offsets) for station, offsets in version.interval_offsets.items()}


def write_forecast(next_hours_dir: Path, version: ModelVersion, models_dir: Path, reports_dir: Path,
                   expectations_dir: Path) -> ForecastOutput:
    """Publish the champion's forecast of the hours after the newest validated hour at every station (its model's
    forecast in `next_hours_dir`) with its intervals and the category of the day: latest.json/.csv/.png, and
    latest_map.png where at least two of the stations have a location in expectations_dir/station_locations.json.

    The same champion on the same data gives the same forecast, so an existing one is reused.
    """
    forecast_path, history_path = next_hours_files(next_hours_dir)
    dataset_key = storage.read_parquet_metadata(forecast_path)["dataset"]
    output_dir = reports_dir / FORECAST_DIR
    json_path, csv_path, plot_path, map_path = (output_dir / f"{LATEST_STEM}{suffix}"
                                                for suffix in (".json", ".csv", ".png", "_map.png"))
    locations_path = expectations_dir / STATION_LOCATIONS_FILE
    locations = station_locations(locations_path)
    raw = pd.read_parquet(forecast_path)
    weather_dir = weather_model_dir(models_dir / version.model_dir)
    weather = ISSUED_TRACK in set(raw.get("model", ()))
    intervals = {NETWORK_MODEL: champion_intervals(models_dir, version),
                 **({ISSUED_TRACK: read_intervals(weather_dir)} if weather else {})}
    day_maps = {NETWORK_MODEL: read_day_maps(models_dir / version.model_dir),
                **({ISSUED_TRACK: read_day_maps(weather_dir)} if weather else {})}
    keys = {"next_hours": next_hours_dir.name, "locations": storage.fingerprint(locations),
            "intervals": storage.fingerprint({model: tables_key(tables) for model, tables in intervals.items()}),
            "categories": storage.fingerprint({model: maps_key(maps) for model, maps in day_maps.items()})}
    if all(path.exists() for path in (json_path, csv_path, plot_path)):
        previous = storage.read_json(json_path)
        if ((previous["model_dir"], previous.get("dataset"), *(previous.get(name) for name in keys))
                == (version.model_dir, dataset_key, *keys.values())):
            log.info("forecast cache hit: %s already holds model v%d's forecast for these data", json_path, version.version)
            return ForecastOutput(json_path, csv_path, plot_path, map_path if map_path.exists() else None,
                                  previous["origin"], version.version, previous["stations"], cache_hit=True)
    forecast = with_intervals(raw, intervals)
    fallbacks = ({station: reason for station, reason in raw.groupby("station", sort=False)["fallback"].first().items()
                  if reason} if "fallback" in raw else {})
    stations = list(dict.fromkeys(raw["station"]))
    horizon = int(raw["horizon_hours"].max())
    origin = raw["origin"].iloc[0].isoformat()
    categories = day_categories(forecast, day_maps)
    payload = {
        "origin": origin,
        "origin_observed": {station: bool(observed) for station, observed
                            in raw.groupby("station", sort=False)["origin_observed"].first().items()},
        "issued_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model_version": version.version,
        "model_dir": version.model_dir,
        "dataset": dataset_key,
        "stations": stations,
        "units": "µg/m³",
        "interval": "80 % split-conformal interval from the model's validation residuals at each station, "
                    "by the forecast's level",
        "category_24h": {station: CATEGORY_NAMES[level] for station, level in categories.items()},
        "models": {station: model for station, model in forecast.groupby("station", sort=False)["model"].first().items()},
        "weather_fallbacks": fallbacks,
        "forecasts": [_forecast_row(row) for row in forecast.to_dict("records")],
    }
    # The JSON goes last: it is what a later run compares against to reuse the forecast.
    storage.write_text(csv_path, forecast.assign(target_time=forecast["target_time"].map(pd.Timestamp.isoformat))
                       .to_csv(index=False))
    history = {station: rows[["timestamp", "target"]] for station, rows
               in pd.read_parquet(history_path).groupby("station", sort=False)}
    plot_next_hours(history, forecast, plot_path, f"PM2.5 forecast from {origin} (model v{version.version})")
    left_off = plot_forecast_map(forecast, categories, locations, map_path,
                                 f"Mean PM2.5 forecast of the {horizon} h from {origin} "
                                 f"(model v{version.version}), µg/m³")
    if left_off is None:
        map_path.unlink(missing_ok=True)  # an earlier map would mislead, and a cache hit goes by whether one exists
    elif left_off:
        log.info("forecast map: no known location for %s (%s); left off the map", ", ".join(left_off), locations_path)
    storage.write_json(json_path, {**payload, **keys})
    log.info("forecast from %s with model v%d: next %d h at %d station(s) written to %s", origin, version.version,
             horizon, len(stations), json_path)
    return ForecastOutput(json_path, csv_path, plot_path, map_path if left_off is not None else None, origin,
                          version.version, stations)


def _forecast_row(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "target_time": row["target_time"].isoformat(), "horizon_hours": int(row["horizon_hours"])}


def forecast_markdown(output: ForecastOutput, image_link: str, map_link: str | None = None) -> str:
    payload = storage.read_json(output.json_path)
    warnings = [f"- **Warning**: station {station} forecast by `lstm`, not `lstm_wx`: {reason}"
                for station, reason in payload.get("weather_fallbacks", {}).items()]
    lines = [f"# PM2.5 forecast from {payload['origin']} (model v{payload['model_version']})", "",
             *([*warnings, ""] if warnings else []),
             f"![Forecast]({image_link})", "", *([f"![Map of the forecast]({map_link})", ""] if map_link else []),
             "| station | time | hours ahead | PM2.5 | 80 % interval | model | weather issued at |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {row['station']} | {row['target_time']} | {row['horizon_hours']} | {row['pm25']} | "
              f"{row['lower_80']}–{row['upper_80']} | {row.get('model', 'lstm')} | {row.get('weather_issued_at') or '–'} |"
              for row in payload["forecasts"]]
    return "\n".join([*lines, "", f"Files: `{output.json_path}`, `{output.csv_path}`", ""])


@task(cache_policy=NO_CACHE, name="forecast", task_run_name="publish the champion's forecast of the next hours")
def forecast_task(next_hours_dir: Path, version: ModelVersion, models_dir: Path, reports_dir: Path,
                  expectations_dir: Path) -> ForecastOutput:
    from prefect.artifacts import create_markdown_artifact

    output = write_forecast(next_hours_dir, version, models_dir, reports_dir, expectations_dir)
    map_link = image_data_uri(output.map_path) if output.map_path else None
    create_markdown_artifact(forecast_markdown(output, image_data_uri(output.plot_path), map_link), key="pm25-forecast",
                             description=f"Next-hours PM2.5 forecast from {output.origin}")
    return finish(output, output.cache_hit, "forecast")
