"""Evaluate: score the network LSTM, each station's own LSTM and the baselines on the test span, per station and
pooled over the network, on the same observed hours.

A forecast is issued from an origin hour whose PM2.5 reading is observed; every (origin, horizon) pair
whose target hour lies in the test span and is observed is scored, for every model alike.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.core import storage
from tasks.core.calibration import (
    INTERVAL_METHOD,
    INTERVALS_FILE,
    DayMeanMap,
    IntervalTable,
    write_day_maps,
    write_intervals,
)
from tasks.core.hours import HOURS_PER_DAY, REPORTED_HORIZONS
from tasks.core.progress import PROGRESS
from tasks.core.states import finish
from tasks.model.features import PM25_INPUT, PreprocessingParams, target_inverse
from tasks.model.gbm import fit_predict_gbm
from tasks.model.network_inputs import NetworkSpec, load_station_params, station_window_set
from tasks.model.train import load_change_predictor
from tasks.model.windows import WindowPlan, WindowSet, make_window_set
from tasks.scoring.categories import fit_day_map
from tasks.scoring.intervals import coverage_by_size, fit_intervals, interval_score

BASELINES = ("lstm_station", "gbm", "persistence", "seasonal_naive", "climatology")
MODELS = ("lstm", *BASELINES)
EVALUATION_DIR = "evaluation"
SCORED_SPANS = ("validation", "test")
SCORING = "observed target hours in the {span} span, from origins with an observed reading; same cells for every model"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluationOutput:
    metrics_path: Path
    predictions_path: Path


def persistence(series: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """The reading at the origin hour, for every horizon (NaN where the origin is unobserved)."""
    return np.repeat(series[origins][:, None], horizon, axis=1)


def seasonal_naive(series: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """The last reading at or before the same hour one day before the target hour."""
    filled = pd.Series(series).ffill().to_numpy()
    source = origins[:, None] + np.arange(1, horizon + 1)[None, :] - HOURS_PER_DAY
    return np.where(source >= 0, filled[np.clip(source, 0, None)], np.nan)


def fit_climatology(timestamps: pd.Series, series: np.ndarray, train_mask: np.ndarray) -> pd.Series:
    """Training-span mean PM2.5 by (month, hour of day)."""
    train = pd.DataFrame({"month": timestamps.dt.month, "hour": timestamps.dt.hour, "value": series})[train_mask]
    return train.groupby(["month", "hour"])["value"].mean()


def climatology(table: pd.Series, timestamps: pd.Series, origins: np.ndarray, horizon: int) -> np.ndarray:
    """The climatological mean of each target hour's month and hour of day."""
    target_rows = np.clip(origins[:, None] + np.arange(1, horizon + 1)[None, :], 0, len(timestamps) - 1)
    stamps = pd.DatetimeIndex(timestamps.to_numpy()[target_rows.ravel()])
    keys = pd.MultiIndex.from_arrays([stamps.month, stamps.hour])
    return table.reindex(keys).to_numpy().reshape(target_rows.shape)


def score(observed: np.ndarray, predicted: np.ndarray, scored: np.ndarray) -> dict[str, float | int | None]:
    """RMSE and MAE (µg/m³) over the scored cells of one horizon; None where the model made no forecast."""
    error = predicted[scored] - observed[scored]
    if error.size == 0 or not np.isfinite(error).all():
        return {"rmse": None, "mae": None, "n": 0}
    return {"rmse": float(np.sqrt(np.mean(error**2))), "mae": float(np.mean(np.abs(error))), "n": int(error.size)}


def scored_cells(observed: np.ndarray, origin_observed: np.ndarray, forecasts: dict[str, np.ndarray]) -> np.ndarray:
    """Cells every model is judged on: observed target, observed origin, and a finite forecast from each model.

    A model that forecasts only some horizons (all-NaN columns elsewhere) constrains only those horizons.
    """
    mask = np.isfinite(observed) & origin_observed[:, None]
    for values in forecasts.values():
        forecast_horizons = np.isfinite(values).any(axis=0)
        mask[:, forecast_horizons] &= np.isfinite(values[:, forecast_horizons])
    return mask


def observed_targets(series: np.ndarray, windows: WindowSet) -> np.ndarray:
    """Readings in µg/m³ at each sample's target hours; NaN where unobserved or outside the span."""
    horizon = windows.targets.shape[1]
    rows = windows.origin_index[:, None] + np.arange(1, horizon + 1)
    return np.where(np.isfinite(windows.targets), np.pad(series, (0, horizon), constant_values=np.nan)[rows], np.nan)


def to_micrograms(windows: WindowSet, change: np.ndarray, params: PreprocessingParams) -> np.ndarray:
    """Forecast changes (standardised model space) back to non-negative µg/m³."""
    model_space = (windows.last_value[:, None] + change) * params.target_std + params.target_mean
    return np.clip(target_inverse(model_space, params.target_transform), 0, None)


def model_forecasts(model_dir: Path, features: dict[str, pd.DataFrame], plan: WindowPlan, station: str,
                    spans: tuple[str, ...]) -> dict[str, np.ndarray]:
    """A saved model's forecasts (µg/m³) of `station` on each span, with the inputs its network reads."""
    spec = NetworkSpec.load(model_dir)
    params = load_station_params(model_dir)[station]
    predict_change = load_change_predictor(model_dir)
    result = {}
    for span in spans:
        windows = station_window_set(features, spec, plan, span, station)
        result[span] = to_micrograms(windows, predict_change(windows.inputs), params)
    return result


def forecast_spans(features: dict[str, pd.DataFrame], station: str, plan: WindowPlan, params: PreprocessingParams,
                   network_dir: Path, station_dir: Path,
                   seed: int) -> dict[str, tuple[WindowSet, dict[str, np.ndarray]]]:
    """One station's validation and test windows, each with every model's forecasts (µg/m³): the network LSTM
    (`lstm`), the station's own LSTM (`lstm_station`) and the baselines."""
    own = features[station]
    series = own["target"].to_numpy(dtype="float64")
    train = make_window_set(own, plan, "train")
    spans = {name: make_window_set(own, plan, name) for name in SCORED_SPANS}
    network = model_forecasts(network_dir, features, plan, station, SCORED_SPANS)
    alone = network if station_dir == network_dir else model_forecasts(station_dir, features, plan, station, SCORED_SPANS)
    gbm_horizons = tuple(h for h in REPORTED_HORIZONS if h <= plan.horizon)
    gbm = fit_predict_gbm(train, spans["validation"], list(spans.values()), plan.feature_columns.index(PM25_INPUT),
                          gbm_horizons, seed)
    table = fit_climatology(own["timestamp"], series, (own["split"] == "train").to_numpy())
    result = {}
    for (name, windows), gbm_change in zip(spans.items(), gbm):
        origins = windows.origin_index
        result[name] = windows, {
            "lstm": network[name],
            "lstm_station": alone[name],
            "gbm": to_micrograms(windows, gbm_change, params),
            "persistence": persistence(series, origins, plan.horizon),
            "seasonal_naive": seasonal_naive(series, origins, plan.horizon),
            "climatology": climatology(table, own["timestamp"], origins, plan.horizon),
        }
    return result


def span_bounds(features: pd.DataFrame, span: str) -> dict[str, str]:
    stamps = features["timestamp"][(features["split"] == span).to_numpy()]
    return {"start": stamps.iloc[0].isoformat(), "end": stamps.iloc[-1].isoformat()}


def forecast_station(features: dict[str, pd.DataFrame], station: str, plan: WindowPlan, params: PreprocessingParams,
                     network_dir: Path, station_dir: Path,
                     seed: int) -> tuple[pd.DataFrame, pd.DataFrame, IntervalTable]:
    """One station's long predictions tables (test, validation), each model's forecast on the same scored cells,
    and its 80 % interval table.

    The intervals come from the network LSTM's residuals on the station's validation span, never
    from the test span. The validation span is the one the model and its settings are chosen on (`make
    sweep`), so the test year never has to be looked at to choose.
    """
    own = features[station]
    series = own["target"].to_numpy(dtype="float64")
    frames = {}
    spans = forecast_spans(features, station, plan, params, network_dir, station_dir, seed)
    observed = {name: observed_targets(series, windows) for name, (windows, _) in spans.items()}
    intervals = fit_intervals(observed["validation"], spans["validation"][1]["lstm"])
    for name, (windows, forecasts) in spans.items():
        scored = scored_cells(observed[name], np.isfinite(series[windows.origin_index]), forecasts)
        lower, upper = intervals.bounds(forecasts["lstm"])
        frames[name] = predictions_frame(own, windows.origin_index, observed[name],
                                         {**forecasts, "lstm_lower": lower, "lstm_upper": upper},
                                         scored).assign(station=station)
    return frames["test"], frames["validation"], intervals


def metrics_from_predictions(frame: pd.DataFrame, horizon: int, models: list[str]) -> dict[str, Any]:
    """Per model: RMSE, MAE and n at the reported horizons, and RMSE at every horizon, over the scored rows of a
    long predictions table (one station's or the whole network's)."""
    scored = frame[frame["scored"]]
    groups = {h: group for h, group in scored.groupby("horizon")}
    result = {}
    for name in models:
        per_horizon = []
        for h in range(1, horizon + 1):
            group = groups.get(h)
            per_horizon.append(score(group["observed"].to_numpy(), group[name].to_numpy(), np.ones(len(group), bool))
                               if group is not None else {"rmse": None, "mae": None, "n": 0})
        result[name] = {f"h{h}": per_horizon[h - 1] for h in REPORTED_HORIZONS if h <= horizon}
        result[name]["rmse_by_horizon"] = [entry["rmse"] for entry in per_horizon]
    return result


def coverage_from_predictions(frame: pd.DataFrame, horizon: int) -> dict[str, Any]:
    """The LSTM's 80 % intervals on the scored cells: coverage overall, by horizon and in each fifth of the
    forecasts by size (smallest first), the mean interval score, and the mean width by horizon."""
    scored = frame[frame["scored"]]
    observed = scored["observed"].to_numpy()
    inside = (observed >= scored["lstm_lower"].to_numpy()) & (observed <= scored["lstm_upper"].to_numpy())
    width = (scored["lstm_upper"] - scored["lstm_lower"]).to_numpy()
    steps = scored["horizon"].to_numpy()
    score = interval_score(observed, scored["lstm_lower"].to_numpy(), scored["lstm_upper"].to_numpy())
    fifths = coverage_by_size(scored["lstm"].to_numpy(), inside)
    return {"coverage_80": float(inside.mean()),
            "coverage_by_size_fifth": [group["coverage_80"] for group in fifths],
            "interval_score_80": float(score.mean()),
            "coverage_by_horizon": [float(inside[steps == h].mean()) for h in range(1, horizon + 1)],
            "mean_width_by_horizon": [float(width[steps == h].mean()) for h in range(1, horizon + 1)]}


@dataclass(frozen=True)
class StationEvaluation:
    station: str
    folder: Path  # predictions.parquet, validation_predictions.parquet, intervals.json
    cache_hit: bool = False


def evaluate_station(station: str, feature_paths: dict[str, Path], plan_path: Path, network_dir: Path,
                     station_dir: Path, seed: int) -> StationEvaluation:
    """Forecast and score one station with every model; kept in the network model's folder, so a later run
    of the same models copies them. The station model's folder name is part of the key."""
    folder = network_dir / EVALUATION_DIR / f"{station}-{station_dir.name}"
    if (folder / INTERVALS_FILE).exists() and storage.read_json(folder / INTERVALS_FILE).get("method") == INTERVAL_METHOD:
        log.info("evaluation cache hit: %s already holds station %s's scores", folder, station)
        return StationEvaluation(station, folder, cache_hit=True)
    features = {name: pd.read_parquet(path) for name, path in feature_paths.items()}
    plan = WindowPlan.from_json(storage.read_json(plan_path))
    params = load_station_params(network_dir)[station]
    test, validation, intervals = forecast_station(features, station, plan, params, network_dir, station_dir, seed)
    storage.write_parquet(folder / "predictions.parquet", test)
    storage.write_parquet(folder / "validation_predictions.parquet", validation)
    own = features[station]
    storage.write_json(folder / INTERVALS_FILE, {"method": INTERVAL_METHOD, "table": intervals.to_json(),  # written last
                                                 "test": span_bounds(own, "test"),
                                                 "validation": span_bounds(own, "validation")})
    scored = len(list((network_dir / EVALUATION_DIR).glob(f"*/{INTERVALS_FILE}")))
    log.info("scored station %s", station, extra={PROGRESS: ("scoring stations", min(scored, len(feature_paths)),
                                                             len(feature_paths))})
    return StationEvaluation(station, folder)


def pooled_evaluation(evaluations: list[StationEvaluation], horizon: int, output_dir: Path,
                      model_dir: Path) -> EvaluationOutput:
    """metrics.json (pooled over every station's scored hours, and per station) and the network's predictions,
    written into `output_dir`; the stations' interval tables and maps of the 24-hour category, which its forecasts
    use, beside the model."""
    tests = [pd.read_parquet(item.folder / "predictions.parquet") for item in evaluations]
    validations = [pd.read_parquet(item.folder / "validation_predictions.parquet") for item in evaluations]
    intervals = {item.station: storage.read_json(item.folder / INTERVALS_FILE) for item in evaluations}
    models = [name for name in MODELS if name in tests[0].columns]
    pooled, pooled_validation = pd.concat(tests, ignore_index=True), pd.concat(validations, ignore_index=True)
    first = next(iter(intervals.values()))
    stations = {}
    for item, test, validation in zip(evaluations, tests, validations):
        stations[item.station] = {
            "models": metrics_from_predictions(test, horizon, models),
            "intervals": {**coverage_from_predictions(test, horizon), "offsets": intervals[item.station]["table"]},
            "validation": {"models": metrics_from_predictions(validation, horizon, models)},
        }
    metrics = {
        "test_start": first["test"]["start"],
        "test_end": first["test"]["end"],
        "scoring": SCORING.format(span="test"),
        "stations_scored": [item.station for item in evaluations],
        "horizons": list(range(1, horizon + 1)),
        "models": metrics_from_predictions(pooled, horizon, models),
        "intervals": {"method": INTERVAL_METHOD, **coverage_from_predictions(pooled, horizon)},
        "validation": {**first["validation"], "scoring": SCORING.format(span="validation"),
                       "models": metrics_from_predictions(pooled_validation, horizon, models)},
        "stations": stations,
    }
    write_intervals(model_dir, {station: IntervalTable.from_json(entry["table"]) for station, entry in intervals.items()})
    write_day_maps(model_dir, {item.station: day_map(validation) for item, validation in zip(evaluations, validations)})
    output_dir.mkdir(parents=True, exist_ok=True)
    storage.write_parquet(output_dir / "predictions.parquet", pooled)
    storage.write_json(output_dir / "metrics.json", metrics)
    farthest = f"h{max(h for h in REPORTED_HORIZONS if h <= horizon)}"
    log.info("test RMSE by model at h1 and %s, pooled over %d station(s): %s", farthest, len(evaluations),
             {name: [round(m["h1"]["rmse"], 2), round(m[farthest]["rmse"], 2)] for name, m in metrics["models"].items()})
    return EvaluationOutput(output_dir / "metrics.json", output_dir / "predictions.parquet")


def day_map(predictions: pd.DataFrame) -> DayMeanMap:
    """The map of the 24-hour category (`tasks.scoring.categories`) from one station's long predictions table of the
    validation span."""
    by_origin = {column: predictions.pivot(index="origin", columns="horizon", values=column).to_numpy()
                 for column in ("observed", "lstm")}
    return fit_day_map(by_origin["observed"], by_origin["lstm"])


def predictions_frame(features: pd.DataFrame, origins: np.ndarray, observed: np.ndarray,
                      forecasts: dict[str, np.ndarray], scored: np.ndarray) -> pd.DataFrame:
    """Long table: one row per (origin, horizon) with the observation and every model's forecast."""
    n, horizon = observed.shape
    steps = np.tile(np.arange(1, horizon + 1), n)
    origin_rows = np.repeat(origins, horizon)
    origin_time = features["timestamp"].iloc[origin_rows].reset_index(drop=True)
    frame = pd.DataFrame({
        "origin": origin_time,
        "horizon": steps,
        "target_time": origin_time + pd.to_timedelta(steps, unit="h"),
        "observed": observed.ravel(),
        "scored": scored.ravel(),
    })
    for name, values in forecasts.items():
        frame[name] = values.ravel()
    return frame


@task(cache_policy=NO_CACHE, name="evaluate", task_run_name="evaluate {station}")
def evaluate_task(station: str, feature_paths: dict[str, Path], plan_path: Path, network_dir: Path,
                  station_dir: Path, seed: int) -> StationEvaluation:
    evaluation = evaluate_station(station, feature_paths, plan_path, network_dir, station_dir, seed)
    return finish(evaluation, evaluation.cache_hit, "evaluate")


@task(cache_policy=NO_CACHE, name="score-network", task_run_name="score the network")
def score_network_task(evaluations: list[StationEvaluation], horizon: int, output_dir: Path,
                       model_dir: Path) -> EvaluationOutput:
    return pooled_evaluation(evaluations, horizon, output_dir, model_dir)
