"""Forecast: the champion model's next 24 hours from the newest validated data, as JSON, CSV, plot and artifact.

A saved model folder is self-contained (model.keras, preprocessing.json, windows.json, training.json), so a
forecast rebuilds the model's inputs from the raw table with the parameters fitted when it was trained.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks import storage
from tasks.evaluate import observed_targets, to_micrograms
from tasks.preprocess import PM25_INPUT, PreprocessingParams, build_features, load_params, to_hourly_grid
from tasks.registry import champion
from tasks.train import PREPROCESSING_FILE, WINDOWS_FILE, load_change_predictor
from tasks.windows import WindowPlan, WindowSet, make_window_set, span_origins

FORECAST_DIR = "forecast"
LATEST_STEM = "latest"
HISTORY_HOURS_PLOTTED = 72

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SavedModel:
    """A trained model ready to forecast: its fitted preprocessing, window shape and change predictor."""

    model_dir: Path
    params: PreprocessingParams
    plan: WindowPlan
    predict_change: Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class ForecastOutput:
    json_path: Path
    csv_path: Path
    plot_path: Path
    origin: str
    model_version: int


def load_saved_model(model_dir: Path) -> SavedModel:
    return SavedModel(model_dir, load_params(model_dir / PREPROCESSING_FILE),
                      WindowPlan.from_json(storage.read_json(model_dir / WINDOWS_FILE)), load_change_predictor(model_dir))


def model_features(raw_path: Path, params: PreprocessingParams) -> pd.DataFrame:
    """The hourly grid of the raw table, turned into model inputs with a model's own fitted parameters."""
    return build_features(to_hourly_grid(pd.read_parquet(raw_path)), params)


def span_forecast(features: pd.DataFrame, model: SavedModel,
                  span_start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Origin rows, observed targets, forecasts (µg/m³) and origin-observed flags for every origin whose
    targets meet the rows from `span_start` on; target hours before the span are masked."""
    split = np.where(np.arange(len(features)) >= span_start, "span", "before")
    plan = WindowPlan(model.plan.lookback, model.plan.horizon, model.plan.feature_columns,
                      {"span": span_origins(split, "span", model.plan.lookback, model.plan.horizon)})
    windows = make_window_set(features.assign(split=split), plan, "span")
    series = features["target"].to_numpy(dtype="float64")
    forecast = to_micrograms(windows, model.predict_change(windows.inputs), model.params)
    return windows.origin_index, observed_targets(series, windows), forecast, np.isfinite(series[windows.origin_index])


def next_hours(features: pd.DataFrame, model: SavedModel, lower_offset: list[float],
               upper_offset: list[float]) -> pd.DataFrame:
    """The forecast for the hours after the last row of `features`, with the model's 80 % interval."""
    lookback, horizon = model.plan.lookback, model.plan.horizon
    inputs = features[model.plan.feature_columns].to_numpy(dtype="float32")[-lookback:][None]
    window = WindowSet(inputs=inputs, targets=np.full((1, horizon), np.nan, dtype="float32"),
                       last_value=features[PM25_INPUT].to_numpy(dtype="float32")[-1:],
                       origin_index=np.array([len(features) - 1]))
    forecast = to_micrograms(window, model.predict_change(inputs), model.params)[0].astype("float64")
    origin = features["timestamp"].iloc[-1]
    return pd.DataFrame({
        "target_time": origin + pd.to_timedelta(np.arange(1, horizon + 1), unit="h"),
        "horizon_hours": np.arange(1, horizon + 1),
        "pm25": forecast.round(1),
        "lower_80": np.clip(forecast + np.asarray(lower_offset), 0, None).round(1),
        "upper_80": (forecast + np.asarray(upper_offset)).round(1),
    })


def plot_next_hours(history: pd.DataFrame, forecast: pd.DataFrame, path: Path, title: str) -> Path:
    from tasks.report import pyplot

    plt = pyplot()
    figure, axis = plt.subplots(figsize=(9, 3.8), constrained_layout=True)
    axis.plot(history["timestamp"], history["target"], color="black", lw=1.2, label="observed")
    axis.fill_between(forecast["target_time"], forecast["lower_80"], forecast["upper_80"], color="tab:blue",
                      alpha=0.2, lw=0, label="80 % interval")
    axis.plot(forecast["target_time"], forecast["pm25"], color="tab:blue", marker="o", ms=3, label="forecast")
    axis.set_ylabel("PM2.5 (µg/m³)")
    axis.set_title(title)
    axis.legend(loc="upper left", fontsize=8)
    axis.tick_params(axis="x", labelrotation=25)
    storage.write_atomically(path, lambda tmp: figure.savefig(tmp, dpi=80, format="png"))
    plt.close(figure)
    return path


def write_forecast(raw_path: Path, models_dir: Path, reports_dir: Path, source_sha256: str) -> ForecastOutput:
    """Forecast the hours after the newest validated hour with the champion; write latest.json/.csv/.png.

    The same champion on the same data gives the same forecast, so an existing one is reused.
    """
    version = champion(models_dir)
    output_dir = reports_dir / FORECAST_DIR
    json_path, csv_path, plot_path = (output_dir / f"{LATEST_STEM}{suffix}" for suffix in (".json", ".csv", ".png"))
    if all(path.exists() for path in (json_path, csv_path, plot_path)):
        previous = storage.read_json(json_path)
        if (previous["model_dir"], previous["source_sha256"]) == (version.model_dir, source_sha256):
            log.info("forecast cache hit: %s already holds model v%d's forecast for these data", json_path, version.version)
            return ForecastOutput(json_path, csv_path, plot_path, previous["origin"], version.version)
    model = load_saved_model(models_dir / version.model_dir)
    features = model_features(raw_path, model.params)
    forecast = next_hours(features, model, version.interval_offsets["lower"], version.interval_offsets["upper"])
    last = features.iloc[-1]
    origin = last["timestamp"].isoformat()
    payload = {
        "origin": origin,
        "origin_observed": bool(np.isfinite(last["target"])),
        "issued_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model_version": version.version,
        "model_dir": version.model_dir,
        "source_sha256": source_sha256,
        "units": "µg/m³",
        "interval": "80 % split-conformal interval from the model's validation residuals",
        "forecasts": [_forecast_row(row) for row in forecast.to_dict("records")],
    }
    # The JSON goes last: it is what a later run compares against to reuse the forecast.
    storage.write_text(csv_path, forecast.assign(target_time=forecast["target_time"].map(pd.Timestamp.isoformat))
                       .to_csv(index=False))
    history = features[["timestamp", "target"]].iloc[-HISTORY_HOURS_PLOTTED:]
    plot_next_hours(history, forecast, plot_path, f"PM2.5 forecast from {origin} (model v{version.version})")
    storage.write_json(json_path, payload)
    log.info("forecast from %s with model v%d: next %d h written to %s", origin, version.version, len(forecast), json_path)
    return ForecastOutput(json_path, csv_path, plot_path, origin, version.version)


def _forecast_row(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "target_time": row["target_time"].isoformat(), "horizon_hours": int(row["horizon_hours"])}


def forecast_markdown(output: ForecastOutput, image_link: str) -> str:
    payload = storage.read_json(output.json_path)
    lines = [f"# PM2.5 forecast from {payload['origin']} (model v{payload['model_version']})", "",
             f"![Forecast]({image_link})", "", "| time | hours ahead | PM2.5 | 80 % interval |", "|---|---|---|---|"]
    lines += [f"| {row['target_time']} | {row['horizon_hours']} | {row['pm25']} | {row['lower_80']}–{row['upper_80']} |"
              for row in payload["forecasts"]]
    return "\n".join([*lines, "", f"Files: `{output.json_path}`, `{output.csv_path}`", ""])


@task(cache_policy=NO_CACHE, name="forecast", task_run_name="forecast the next hours with the champion")
def forecast_task(raw_path: Path, models_dir: Path, reports_dir: Path, source_sha256: str) -> ForecastOutput:
    from prefect.artifacts import create_markdown_artifact

    from tasks.report import image_data_uri

    output = write_forecast(raw_path, models_dir, reports_dir, source_sha256)
    create_markdown_artifact(forecast_markdown(output, image_data_uri(output.plot_path)), key="pm25-forecast",
                             description=f"Next-hours PM2.5 forecast from {output.origin}")
    return output

