"""Evaluate: score the network LSTM, the weather model's tracks, each station's own LSTM and the baselines on the test
span, per station and pooled over the network, on the same observed hours, from the span forecasts of
`tasks.model.span_forecasts`; the 80 % intervals of the network LSTM and of each weather track are scored too.

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
import pyarrow.parquet as pq
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.core import storage
from tasks.core.calibration import INTERVAL_METHOD, IntervalTable, read_intervals, tables_key, track_intervals_file
from tasks.core.errors import RegistryError
from tasks.core.home import METRICS_FILE, PREDICTIONS_FILE, SCORED_SPANS, span_forecasts_path
from tasks.core.hours import REPORTED_HORIZONS
from tasks.core.progress import PROGRESS
from tasks.core.states import finish
from tasks.core.weather import ISSUED_IN_FULL, ISSUED_TRACK, NOISY_TRACK, PERFECT_TRACK, TRACK_LABELS, WEATHER_TRACKS
from tasks.scoring.intervals import coverage_by_size, interval_score

BASELINES = ("lstm_station", "gbm", "ridge", "persistence", "seasonal_naive", "climatology")
MODELS = ("lstm", *WEATHER_TRACKS, *BASELINES)
SCORES_FILE = "scores.json"  # the spans' bounds, and the key of the intervals and forecasts scored; written last
SCORING = "observed target hours in the {span} span, from origins with an observed reading; same cells for every model"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluationOutput:
    metrics_path: Path
    predictions_path: Path


@dataclass(frozen=True)
class StationEvaluation:
    station: str
    folder: Path  # each span's forecasts (the model stage's) and scores, scores.json
    cache_hit: bool = False


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


def span_scores_path(folder: Path, span: str) -> Path:
    return folder / f"scores_{span}.parquet"


def station_predictions(folder: Path, span: str, columns: list[str] | None = None) -> pd.DataFrame:
    """One station's predictions of a span: its forecasts, row by row with their scores (`scored`, the interval)."""
    forecasts = pd.read_parquet(span_forecasts_path(folder, span))
    frame = predictions_frame(forecasts, pd.read_parquet(span_scores_path(folder, span)))
    return frame if columns is None else frame[columns]


def predictions_frame(forecasts: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """The long predictions table: origin, horizon, target time, observation, `scored`, every model's forecast,
    the 80 % intervals scored (`<model>_lower`, `<model>_upper`), whether `lstm_wx` had a forecast, and the station."""
    models = [name for name in MODELS if name in forecasts.columns]
    frame = forecasts[["origin", "horizon", "target_time", "observed"]].assign(scored=scores["scored"].to_numpy())
    for name in models:
        frame[name] = forecasts[name]
    bounds = {name: scores[name].to_numpy() for name in scores.columns if name != "scored"}
    issued = {ISSUED_IN_FULL: forecasts[ISSUED_IN_FULL]} if ISSUED_IN_FULL in forecasts else {}
    return frame.assign(**bounds, **issued, station=forecasts["station"])


def span_scores(forecasts: pd.DataFrame, intervals: dict[str, IntervalTable]) -> pd.DataFrame:
    """Per row of a span's forecasts (one per origin and horizon): whether it is a cell every model is scored on,
    and the 80 % interval of each model in `intervals` (by forecast column)."""
    horizon = int(forecasts["horizon"].max())
    models = [name for name in MODELS if name in forecasts.columns]
    by_origin = {name: forecasts[name].to_numpy().reshape(-1, horizon) for name in ["observed", *models]}
    origin_observed = forecasts["origin_observed"].to_numpy().reshape(-1, horizon)[:, 0]
    scored = scored_cells(by_origin["observed"], origin_observed, {name: by_origin[name] for name in models})
    columns = {"scored": scored.ravel()}
    for name, table in intervals.items():
        lower, upper = table.bounds(by_origin[name])
        columns.update({f"{name}_lower": lower.ravel(), f"{name}_upper": upper.ravel()})
    return pd.DataFrame(columns)


def interval_tables(network_dir: Path, weather_dir: Path | None, columns: list[str]) -> dict[str, dict[str, IntervalTable]]:
    """Each scored model's interval tables by station, by forecast column: the network LSTM's, and each weather
    track's that the forecasts hold (`lstm_wx` as issued is the weather model's own, fitted on the noisy track)."""
    tables = {"lstm": read_intervals(network_dir)}
    if weather_dir is not None:
        own = read_intervals(weather_dir)
        by_track = {PERFECT_TRACK: read_intervals(weather_dir, track_intervals_file(PERFECT_TRACK)), NOISY_TRACK: own,
                    ISSUED_TRACK: own}
        tables.update({track: table for track, table in by_track.items() if track in columns})
    missing = [name for name, table in tables.items() if table is None]
    if missing:
        raise RegistryError(f"model {network_dir} has no 80 % intervals for {missing}: calibrate it first")
    return tables


def evaluate_station(station: str, folder: Path, network_dir: Path, stations: int,
                     weather_dir: Path | None = None) -> StationEvaluation:
    """Score one station's span forecasts in `folder` with the network model's intervals (and its weather model's);
    kept there, so a later run of the same models and intervals reuses them. `stations` is how many the run scores
    (for its progress)."""
    # The scores hold for these intervals and these forecasts' models; other ones are scored again.
    models = sorted(pq.read_schema(span_forecasts_path(folder, "test")).names)
    tables = {name: by_station[station] for name, by_station in interval_tables(network_dir, weather_dir, models).items()}
    key = storage.fingerprint({name: tables_key({station: table}) for name, table in tables.items()}, models)
    scores_path = folder / SCORES_FILE
    if scores_path.exists() and storage.read_json(scores_path).get("key") == key:
        log.info("evaluation cache hit: %s already holds station %s's scores", folder, station)
        return StationEvaluation(station, folder, cache_hit=True)
    bounds = {}
    for span in SCORED_SPANS:
        path = span_forecasts_path(folder, span)
        storage.write_parquet(span_scores_path(folder, span), span_scores(pd.read_parquet(path), tables))
        metadata = storage.read_parquet_metadata(path)
        bounds[span] = {"start": metadata["span_start"], "end": metadata["span_end"]}
    storage.write_json(scores_path, {"method": INTERVAL_METHOD, "key": key, **bounds})
    scored = len(list(folder.parent.glob(f"*/{SCORES_FILE}")))
    log.info("scored station %s", station, extra={PROGRESS: ("scoring stations", min(scored, stations), stations)})
    return StationEvaluation(station, folder)


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


def coverage_from_predictions(frame: pd.DataFrame, horizon: int, model: str = "lstm") -> dict[str, Any]:
    """A model's 80 % intervals on the scored cells: coverage overall, by horizon and in each fifth of the
    forecasts by size (smallest first), the mean interval score, and the mean width by horizon."""
    scored = frame[frame["scored"]]
    observed = scored["observed"].to_numpy()
    lower, upper = scored[f"{model}_lower"].to_numpy(), scored[f"{model}_upper"].to_numpy()
    inside = (observed >= lower) & (observed <= upper)
    width = upper - lower
    steps = scored["horizon"].to_numpy()
    score = interval_score(observed, lower, upper)
    fifths = coverage_by_size(scored[model].to_numpy(), inside)
    return {"coverage_80": float(inside.mean()),
            "coverage_by_size_fifth": [group["coverage_80"] for group in fifths],
            "interval_score_80": float(score.mean()),
            "coverage_by_horizon": [float(inside[steps == h].mean()) for h in range(1, horizon + 1)],
            "mean_width_by_horizon": [float(width[steps == h].mean()) for h in range(1, horizon + 1)]}


def weather_track_metrics(frame: pd.DataFrame, horizon: int) -> dict[str, Any]:
    """Each weather track in the predictions: what it is fed, its 80 % intervals, and for `lstm_wx` the share of the
    scored cells whose origin had a weather forecast of every target hour (the others carry the network LSTM's)."""
    result = {}
    for track in WEATHER_TRACKS:
        if track not in frame.columns:
            continue
        result[track] = {"fed": TRACK_LABELS[track], "intervals": coverage_from_predictions(frame, horizon, track)}
        if track == ISSUED_TRACK:
            result[track]["share_with_forecast"] = float(frame.loc[frame["scored"], ISSUED_IN_FULL].mean())
    return result


def pooled_evaluation(evaluations: list[StationEvaluation], horizon: int, output_dir: Path,
                      model_dir: Path) -> EvaluationOutput:
    """metrics.json (pooled over every station's scored hours, and per station) and the network's predictions,
    written into `output_dir`; `model_dir` is the network model whose 80 % intervals were scored."""
    tests = [station_predictions(item.folder, "test") for item in evaluations]
    validations = [station_predictions(item.folder, "validation") for item in evaluations]
    spans = {item.station: storage.read_json(item.folder / SCORES_FILE) for item in evaluations}
    tables = read_intervals(model_dir) or {}
    models = [name for name in MODELS if name in tests[0].columns]
    pooled, pooled_validation = pd.concat(tests, ignore_index=True), pd.concat(validations, ignore_index=True)
    first = next(iter(spans.values()))
    stations = {}
    for item, test, validation in zip(evaluations, tests, validations):
        stations[item.station] = {
            "models": metrics_from_predictions(test, horizon, models),
            "intervals": {**coverage_from_predictions(test, horizon), "offsets": tables[item.station].to_json()},
            "weather_tracks": weather_track_metrics(test, horizon),
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
        "weather_tracks": weather_track_metrics(pooled, horizon),
        "validation": {**first["validation"], "scoring": SCORING.format(span="validation"),
                       "models": metrics_from_predictions(pooled_validation, horizon, models)},
        "stations": stations,
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    storage.write_parquet(output_dir / PREDICTIONS_FILE, pooled)
    storage.write_json(output_dir / METRICS_FILE, metrics)
    farthest = f"h{max(h for h in REPORTED_HORIZONS if h <= horizon)}"
    log.info("test RMSE by model at h1 and %s, pooled over %d station(s): %s", farthest, len(evaluations),
             {name: [round(m["h1"]["rmse"], 2), round(m[farthest]["rmse"], 2)] for name, m in metrics["models"].items()})
    return EvaluationOutput(output_dir / METRICS_FILE, output_dir / PREDICTIONS_FILE)


@task(cache_policy=NO_CACHE, name="evaluate", task_run_name="evaluate {station}")
def evaluate_task(station: str, folder: Path, network_dir: Path, stations: int,
                  weather_dir: Path | None = None) -> StationEvaluation:
    evaluation = evaluate_station(station, folder, network_dir, stations, weather_dir)
    return finish(evaluation, evaluation.cache_hit, "evaluate")


@task(cache_policy=NO_CACHE, name="score-network", task_run_name="score the network")
def score_network_task(evaluations: list[StationEvaluation], horizon: int, output_dir: Path,
                       model_dir: Path) -> EvaluationOutput:
    return pooled_evaluation(evaluations, horizon, output_dir, model_dir)
