"""Promote: register a trained model and make it champion only if it beats the champion on the newest span.

Both models forecast the same newest evaluation span (the last `span_days` of the current data, the run's
test span) from the same origins; each is scored by its RMSE per horizon on the cells where the target and
the origin reading are observed and both models forecast, and the score is the mean over horizons. The
challenger is promoted only with a strictly lower score.
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

from tasks import storage
from tasks.evaluate import REPORTED_HORIZONS
from tasks.forecast import load_saved_model, span_forecast
from tasks.preprocess import HOURS_PER_DAY, build_features, to_hourly_grid
from tasks.registry import ModelVersion, code_version, read_registry, registry_lock, write_registry
from tasks.train import MODEL_FILE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpanScores:
    span_start: str
    span_end: str
    cells: int
    mean_rmse: dict[str, float]  # by model folder name


def score_on_newest_span(raw_path: Path, model_dirs: list[Path], span_days: int) -> SpanScores:
    """Score each model on the last `span_days` of the data, on the cells every model can be judged on."""
    grid = to_hourly_grid(pd.read_parquet(raw_path))  # read once; each model builds its own inputs from it
    results = {}
    for model_dir in model_dirs:
        model = load_saved_model(model_dir)
        features = build_features(grid, model.params)
        results[model_dir.name] = (features, *span_forecast(features, model, len(features) - span_days * HOURS_PER_DAY))
    first_common = max(origins[0] for _, origins, *_ in results.values())
    horizon = min(forecast.shape[1] for *_, forecast, _ in results.values())
    aligned = {name: (observed[origins >= first_common, :horizon], forecast[origins >= first_common, :horizon],
                      origin_observed[origins >= first_common])
               for name, (_, origins, observed, forecast, origin_observed) in results.items()}
    observed, _, origin_observed = next(iter(aligned.values()))
    cells = np.isfinite(observed) & origin_observed[:, None]
    for _, forecast, _ in aligned.values():
        cells &= np.isfinite(forecast)
    by_horizon = {name: [float(np.sqrt(np.mean((forecast[cells[:, h], h] - observed[cells[:, h], h]) ** 2)))
                         for h in range(horizon)] for name, (_, forecast, _) in aligned.items()}
    stamps = next(iter(results.values()))[0]["timestamp"]
    return SpanScores(
        span_start=stamps.iloc[-span_days * HOURS_PER_DAY].isoformat(), span_end=stamps.iloc[-1].isoformat(),
        cells=int(cells.sum()), mean_rmse={name: float(np.mean(values)) for name, values in by_horizon.items()},
    )


def register_and_promote(models_dir: Path, model_dir: Path, raw_path: Path, metrics_path: Path, run_id: str,
                         source_sha256: str, settings: dict[str, Any], span_days: int) -> ModelVersion:
    """Add `model_dir` to the registry (once per model) and promote it if it beats the champion.

    Runs under the registry lock; the new registry, champion field included, lands in one atomic rename.
    """
    with registry_lock(models_dir):
        registry = read_registry(models_dir)
        known = registry.find_model(model_dir.name)
        if known is not None:
            log.info("model %s is already registered as v%d; registry unchanged", model_dir.name, known.version)
            return known
        current = registry.get(registry.champion) if registry.champion is not None else None
        contenders = [model_dir] + ([models_dir / current.model_dir] if current else [])
        scores = score_on_newest_span(raw_path, contenders, span_days)
        challenge = {
            "span_start": scores.span_start, "span_end": scores.span_end, "cells": scores.cells,
            "score": "mean over horizons of RMSE (µg/m³) on the newest span's observed hours",
            "challenger": scores.mean_rmse[model_dir.name],
        }
        if current is None:
            promoted, reason = True, "no champion yet"
        else:
            challenge.update(champion_version=current.version, champion=scores.mean_rmse[current.model_dir])
            promoted = challenge["challenger"] < challenge["champion"]
            reason = (f"{'beats' if promoted else 'does not beat'} champion v{current.version}: "
                      f"{challenge['challenger']:.3f} vs {challenge['champion']:.3f}")
        metrics = storage.read_json(metrics_path)
        entry = ModelVersion(
            version=registry.next_version(),
            model_dir=model_dir.name,
            model_sha256=storage.sha256_file(model_dir / MODEL_FILE),
            registered_at=datetime.now(UTC).isoformat(timespec="seconds"),
            run_id=run_id,
            source_sha256=source_sha256,
            code_version=code_version(),
            settings=settings,
            test_rmse={key: round(value["rmse"], 3) for key, value in metrics["models"]["lstm"].items()
                       if key in {f"h{h}" for h in REPORTED_HORIZONS}},
            interval_offsets={bound: [round(value, 2) for value in metrics["intervals"][f"{bound}_offset"]]
                              for bound in ("lower", "upper")},
            challenge={**challenge, "promoted": promoted, "reason": reason},
        )
        registry.versions.append(entry)
        if promoted:
            registry.champion = entry.version
        write_registry(models_dir, registry)
    log.info("registered model v%d (%s): %s", entry.version, "champion" if promoted else "rejected challenger", reason)
    return entry


@task(cache_policy=NO_CACHE, name="register", task_run_name="register and promote {model_dir.name}")
def register_task(models_dir: Path, model_dir: Path, raw_path: Path, metrics_path: Path, run_id: str,
                  source_sha256: str, settings: dict[str, Any], span_days: int) -> ModelVersion:
    return register_and_promote(models_dir, model_dir, raw_path, metrics_path, run_id, source_sha256, settings, span_days)
