"""Promote: register a trained model and make it champion only if it beats the champion on the newest span.

Both models forecast the same newest evaluation span (the last `span_days` of the current data, the run's
test span) from the same origins; each is scored by its RMSE per horizon on the cells where the target and
the origin reading are observed and both models forecast, and the score is the mean over horizons. The
challenger is promoted only with a strictly lower score.
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

from tasks.core import storage
from tasks.core.home import MODEL_FILE, NETWORK_FILE
from tasks.core.hours import HOURS_PER_DAY, REPORTED_HORIZONS
from tasks.core.records import Dataset, ModelVersion, SpanForecast
from tasks.operate.registry import code_version, read_registry, registry_lock, write_registry

# A station whose score the challenger worsens by more than this share is named in the decision.
WORSE_BY = 0.05

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpanScores:
    span_start: str
    span_end: str
    cells: int
    mean_rmse: dict[str, float]  # by model folder name, pooled over the stations
    station_rmse: dict[str, dict[str, float]]  # by model folder name, then station


def mean_rmse(errors: list[np.ndarray], cells: list[np.ndarray]) -> float:
    """Mean over horizons of the RMSE over the given cells (rows pooled over the arrays given)."""
    error = np.concatenate(errors)
    mask = np.concatenate(cells)
    return float(np.mean([np.sqrt(np.mean(error[mask[:, h], h] ** 2)) for h in range(error.shape[1])]))


@dataclass(frozen=True)
class Challenge:
    """How a challenger meets the champion: each model's forecasts of the newest `span_days` of the data (or of
    the hours up to `through`, reading nothing after it), made by `forecast` (a model's span forecast, by the data,
    its folder, the days and `through`: `tasks.model.predict.newest_span_forecast`, which the flows hand in)."""

    dataset_path: Path
    span_days: int
    forecast: Callable[[Path, Path, int, pd.Timestamp | None], SpanForecast]
    through: pd.Timestamp | None = None


@dataclass(frozen=True)
class Candidate:
    """A trained model put up for registration: its folder, the run that made it and what that run measured."""

    model_dir: Path
    run_id: str
    source_sha256: str
    settings: dict[str, Any]
    metrics_path: Path


def score_on_newest_span(model_dirs: list[Path], challenge: Challenge) -> SpanScores:
    """Score each model on the challenge's span at every station they share, on the cells every model can be judged
    on: pooled over the stations, and per station."""
    dataset = Dataset.load(challenge.dataset_path)
    results = {model_dir.name: challenge.forecast(challenge.dataset_path, model_dir, challenge.span_days,
                                                  challenge.through) for model_dir in model_dirs}
    stations = sorted(set.intersection(*(set(result) for result in results.values())))
    horizon = min(forecast.shape[1] for result in results.values() for _, _, forecast, _ in result.values())
    errors = {name: [] for name in results}
    cells = []
    for station in stations:
        first_common = max(result[station][0][0] for result in results.values())
        aligned = {name: tuple(array[result[station][0] >= first_common] for array in result[station])
                   for name, result in results.items()}
        _, observed, _, origin_observed = next(iter(aligned.values()))
        mask = np.isfinite(observed[:, :horizon]) & origin_observed[:, None]
        for _, _, forecast, _ in aligned.values():
            mask &= np.isfinite(forecast[:, :horizon])
        cells.append(mask)
        for name, (_, observed, forecast, _) in aligned.items():
            errors[name].append(forecast[:, :horizon] - observed[:, :horizon])
    through = challenge.through
    stamps = pd.date_range(dataset.start, dataset.end if through is None else through, freq="h")
    span_hours = challenge.span_days * HOURS_PER_DAY
    return SpanScores(
        span_start=stamps[-span_hours].isoformat(), span_end=stamps[-1].isoformat(),
        cells=int(sum(mask.sum() for mask in cells)),
        mean_rmse={name: mean_rmse(values, cells) for name, values in errors.items()},
        station_rmse={name: {station: mean_rmse([error], [mask]) for station, error, mask in zip(stations, values, cells)}
                      for name, values in errors.items()},
    )


def worse_stations(scores: SpanScores, challenger: str, champion_dir: str, tolerance: float = WORSE_BY) -> dict[str, float]:
    """Stations where the challenger's score is more than `tolerance` above the champion's: station → ratio."""
    ratios = {station: value / scores.station_rmse[champion_dir][station]
              for station, value in scores.station_rmse[challenger].items()}
    return {station: round(ratio, 3) for station, ratio in ratios.items() if ratio > 1 + tolerance}


def decide(scores: SpanScores, challenger: str, champion_dir: str, champion_version: int) -> tuple[bool, str, dict[str, Any]]:
    """The promotion rule, for the nightly flow and its backtest alike: the challenger becomes champion with a
    strictly lower pooled score; stations it worsens by more than WORSE_BY are named."""
    worse = worse_stations(scores, challenger, champion_dir)
    challenger_score, champion_score = scores.mean_rmse[challenger], scores.mean_rmse[champion_dir]
    promoted = challenger_score < champion_score
    reason = (f"{'beats' if promoted else 'does not beat'} champion v{champion_version}: "
              f"{challenger_score:.3f} vs {champion_score:.3f}")
    if worse:
        reason += "; worse by more than {:.0%} at {}".format(WORSE_BY, ", ".join(
            f"{station} ({ratio:.3f}x)" for station, ratio in worse.items()))
    return promoted, reason, {"champion_version": champion_version, "champion": champion_score,
                              "champion_by_station": scores.station_rmse[champion_dir], "worse_stations": worse}


def register_and_promote(models_dir: Path, candidate: Candidate, challenge: Challenge) -> ModelVersion:
    """Add the candidate's model to the registry (once per model) and promote it if it beats the champion.

    Runs under the registry lock; the new registry, champion field included, lands in one atomic rename.
    """
    model_dir = candidate.model_dir
    with registry_lock(models_dir):
        registry = read_registry(models_dir)
        known = registry.find_model(model_dir.name)
        if known is not None:
            log.info("model %s is already registered as v%d; registry unchanged", model_dir.name, known.version)
            return known
        current = registry.get(registry.champion) if registry.champion is not None else None
        outdated = current is not None and not (models_dir / current.model_dir / NETWORK_FILE).exists()
        contenders = [model_dir] + ([models_dir / current.model_dir] if current and not outdated else [])
        scores = score_on_newest_span(contenders, challenge)
        challenge = {
            "span_start": scores.span_start, "span_end": scores.span_end, "cells": scores.cells,
            "score": "mean over horizons of RMSE (µg/m³) on the newest span's observed hours, pooled over the stations",
            "challenger": scores.mean_rmse[model_dir.name],
            "challenger_by_station": scores.station_rmse[model_dir.name],
        }
        if current is None:
            promoted, reason = True, "no champion yet"
        elif outdated:
            promoted = True
            reason = (f"replaces champion v{current.version}, which an earlier pipeline version made (its folder has no "
                      f"{NETWORK_FILE}) and this one cannot score")
        else:
            promoted, reason, details = decide(scores, model_dir.name, current.model_dir, current.version)
            challenge.update(details)
        metrics = storage.read_json(candidate.metrics_path)
        entry = ModelVersion(
            version=registry.next_version(),
            model_dir=model_dir.name,
            model_sha256=storage.sha256_file(model_dir / MODEL_FILE),
            registered_at=datetime.now(UTC).isoformat(timespec="seconds"),
            run_id=candidate.run_id,
            source_sha256=candidate.source_sha256,
            code_version=code_version(),
            settings=candidate.settings,
            stations=list(metrics["stations"]),
            test_rmse={key: round(value["rmse"], 3) for key, value in metrics["models"]["lstm"].items()
                       if key in {f"h{h}" for h in REPORTED_HORIZONS}},
            challenge={**challenge, "promoted": promoted, "reason": reason},
        )
        registry.versions.append(entry)
        if promoted:
            registry.champion = entry.version
        write_registry(models_dir, registry)
    log.info("registered model v%d (%s): %s", entry.version, "champion" if promoted else "rejected challenger", reason)
    return entry


@task(cache_policy=NO_CACHE, name="register", task_run_name="register and promote {candidate.model_dir.name}")
def register_task(models_dir: Path, candidate: Candidate, challenge: Challenge) -> ModelVersion:
    return register_and_promote(models_dir, candidate, challenge)
