"""Evaluate: score the LSTM and the naive baselines on the test span, on the same observed hours.

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

from tasks import storage
from tasks.gbm import fit_predict_gbm
from tasks.preprocess import HOURS_PER_DAY, PM25_INPUT, PreprocessingParams, load_params, target_inverse
from tasks.train import load_change_predictor
from tasks.windows import WindowPlan, WindowSet, make_window_set

REPORTED_HORIZONS = (1, 3, 6, 12, 24)
BASELINES = ("gbm", "persistence", "seasonal_naive", "climatology")
INTERVAL_COVERAGE = 0.8
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


def metrics_table(observed: np.ndarray, forecasts: dict[str, np.ndarray], scored: np.ndarray) -> dict[str, Any]:
    """Per model: the reported horizons as h1, h3, … and RMSE at every horizon for the error curve."""
    models = {}
    for name, values in forecasts.items():
        per_horizon = [score(observed[:, h], values[:, h], scored[:, h]) for h in range(observed.shape[1])]
        models[name] = {f"h{h}": per_horizon[h - 1] for h in REPORTED_HORIZONS if h <= observed.shape[1]}
        models[name]["rmse_by_horizon"] = [entry["rmse"] for entry in per_horizon]
    return models


def observed_targets(series: np.ndarray, windows: WindowSet) -> np.ndarray:
    """Readings in µg/m³ at each sample's target hours; NaN where unobserved or outside the span."""
    horizon = windows.targets.shape[1]
    rows = windows.origin_index[:, None] + np.arange(1, horizon + 1)
    return np.where(np.isfinite(windows.targets), np.pad(series, (0, horizon), constant_values=np.nan)[rows], np.nan)


def to_micrograms(windows: WindowSet, change: np.ndarray, params: PreprocessingParams) -> np.ndarray:
    """Forecast changes (standardised model space) back to non-negative µg/m³."""
    model_space = (windows.last_value[:, None] + change) * params.target_std + params.target_mean
    return np.clip(target_inverse(model_space, params.target_transform), 0, None)


def fit_interval_offsets(observed: np.ndarray, forecast: np.ndarray, coverage: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-horizon residual quantiles (split conformal): forecast + offsets brackets `coverage` of outcomes."""
    residual = observed - forecast
    tail = (1 - coverage) / 2
    return np.nanquantile(residual, tail, axis=0), np.nanquantile(residual, 1 - tail, axis=0)


def interval_coverage(observed: np.ndarray, lower: np.ndarray, upper: np.ndarray, scored: np.ndarray) -> dict[str, Any]:
    inside = (observed >= lower) & (observed <= upper)
    by_horizon = [float(inside[scored[:, h], h].mean()) for h in range(observed.shape[1])]
    return {"coverage_80": float(inside[scored].mean()), "coverage_by_horizon": by_horizon,
            "mean_width_by_horizon": [float(np.mean(upper[scored[:, h], h] - lower[scored[:, h], h])) for h in range(observed.shape[1])]}


def forecast_spans(features: pd.DataFrame, plan: WindowPlan, params: PreprocessingParams, model_dir: Path,
                   seed: int) -> dict[str, tuple[WindowSet, dict[str, np.ndarray]]]:
    """The validation and test spans' windows, each with the LSTM's and every baseline's forecasts (µg/m³)."""
    series = features["target"].to_numpy(dtype="float64")
    train = make_window_set(features, plan, "train")
    spans = {name: make_window_set(features, plan, name) for name in SCORED_SPANS}
    predict_change = load_change_predictor(model_dir)
    gbm_horizons = tuple(h for h in REPORTED_HORIZONS if h <= plan.horizon)
    gbm = fit_predict_gbm(train, spans["validation"], list(spans.values()), plan.feature_columns.index(PM25_INPUT),
                          gbm_horizons, seed)
    table = fit_climatology(features["timestamp"], series, (features["split"] == "train").to_numpy())
    result = {}
    for (name, windows), gbm_change in zip(spans.items(), gbm):
        origins = windows.origin_index
        result[name] = windows, {
            "lstm": to_micrograms(windows, predict_change(windows.inputs), params),
            "gbm": to_micrograms(windows, gbm_change, params),
            "persistence": persistence(series, origins, plan.horizon),
            "seasonal_naive": seasonal_naive(series, origins, plan.horizon),
            "climatology": climatology(table, features["timestamp"], origins, plan.horizon),
        }
    return result


def span_bounds(features: pd.DataFrame, span: str) -> dict[str, str]:
    stamps = features["timestamp"][(features["split"] == span).to_numpy()]
    return {"start": stamps.iloc[0].isoformat(), "end": stamps.iloc[-1].isoformat()}


def forecast_test(features: pd.DataFrame, plan: WindowPlan, params: PreprocessingParams, model_dir: Path,
                  seed: int) -> tuple[dict[str, Any], pd.DataFrame]:
    """Score the LSTM and every baseline on the test span; return the metrics and the long predictions table.

    The same scores on the validation span go into the metrics too, under "validation": that span is the
    one the model and its settings are chosen on (`make sweep`), so 2014 never has to be looked at to choose.
    80 % intervals come from the LSTM's residual quantiles on the validation span, never from the test span.
    """
    series = features["target"].to_numpy(dtype="float64")
    spans = forecast_spans(features, plan, params, model_dir, seed)
    scores = {}
    for name, (windows, forecasts) in spans.items():
        observed = observed_targets(series, windows)
        scored = scored_cells(observed, np.isfinite(series[windows.origin_index]), forecasts)
        scores[name] = observed, scored, metrics_table(observed, forecasts, scored)
    (_, validation_forecasts), (test, forecasts) = spans["validation"], spans["test"]
    lower_offset, upper_offset = fit_interval_offsets(scores["validation"][0], validation_forecasts["lstm"],
                                                      INTERVAL_COVERAGE)
    observed, scored, models = scores["test"]
    lstm = forecasts["lstm"]
    lower, upper = np.clip(lstm + lower_offset, 0, None), lstm + upper_offset
    bounds = span_bounds(features, "test")
    metrics = {
        "test_start": bounds["start"],
        "test_end": bounds["end"],
        "scoring": SCORING.format(span="test"),
        "horizons": list(range(1, plan.horizon + 1)),
        "models": models,
        "intervals": {"method": "split conformal: LSTM residual quantiles 0.1 and 0.9 per horizon on the validation span",
                      "lower_offset": lower_offset.tolist(), "upper_offset": upper_offset.tolist(),
                      **interval_coverage(observed, lower, upper, scored)},
        "validation": {**span_bounds(features, "validation"), "scoring": SCORING.format(span="validation"),
                       "models": scores["validation"][2]},
    }
    predictions = predictions_frame(features, test.origin_index, observed,
                                    {**forecasts, "lstm_lower": lower, "lstm_upper": upper}, scored)
    return metrics, predictions


def evaluate(features_path: Path, plan_path: Path, params_path: Path, model_dir: Path, output_dir: Path,
             seed: int) -> EvaluationOutput:
    """Score the test span; write metrics.json and predictions.parquet into `output_dir`.

    The scores depend only on the model folder (whose name fixes the data, windows and settings, seed
    included), so they are kept in `model_dir/evaluation/` and a later run with the same model copies them.
    """
    cache = model_dir / EVALUATION_DIR
    if (cache / "metrics.json").exists() and (cache / "predictions.parquet").exists():
        log.info("evaluation cache hit: %s already holds this model's scores", cache)
        metrics = storage.read_json(cache / "metrics.json")
    else:
        metrics, predictions = forecast_test(pd.read_parquet(features_path),
                                             WindowPlan.from_json(storage.read_json(plan_path)),
                                             load_params(params_path), model_dir, seed)
        storage.write_parquet(cache / "predictions.parquet", predictions)
        storage.write_json(cache / "metrics.json", metrics)  # written last: marks a complete evaluation
    output_dir.mkdir(parents=True, exist_ok=True)
    for name in ("predictions.parquet", "metrics.json"):
        storage.write_bytes(output_dir / name, (cache / name).read_bytes())
    farthest = f"h{max(h for h in REPORTED_HORIZONS if h <= len(metrics['horizons']))}"
    log.info("test RMSE by model at h1 and %s: %s", farthest,
             {name: [round(m["h1"]["rmse"], 2), round(m[farthest]["rmse"], 2)] for name, m in metrics["models"].items()})
    return EvaluationOutput(output_dir / "metrics.json", output_dir / "predictions.parquet")


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


@task(cache_policy=NO_CACHE, name="evaluate", task_run_name="evaluate {model_dir.name}")
def evaluate_task(features_path: Path, plan_path: Path, params_path: Path, model_dir: Path, output_dir: Path,
                  seed: int) -> EvaluationOutput:
    return evaluate(features_path, plan_path, params_path, model_dir, output_dir, seed)
