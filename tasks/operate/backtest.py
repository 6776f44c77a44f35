"""Backtest: replay the nightly process over past origins, seeing at each origin only the readings recorded by then.

At every retrain origin R the nightly unit (`flows/nightly.py`) trains a challenger on the readings before R
(validation: the year before R, training: the rest) and calibrates it on that validation span; here it is promoted
by the nightly flow's rule, scored on the same span, and each origin's forecast comes from the champion of that
night. Every step is cached by content: a retrain origin's features and model by the readings before R, a decision
by the two models, a segment of forecasts by its model and the readings up to its last origin, so a killed backtest
resumes where it stopped and a file with hours appended reuses every earlier step.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from uuid import UUID

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.core import storage
from tasks.core.calibration import read_intervals
from tasks.core.hours import TIMEZONE
from tasks.core.progress import PROGRESS
from tasks.core.records import ISSUED_FORECAST_COLUMNS, Dataset, Decision, Segment
from tasks.core.settings import BacktestSettings, PreprocessingSettings
from tasks.operate.origins import BacktestPlan, check_within_data, default_dates, plan_backtest
from tasks.operate.promote import Challenge, decide, score_on_newest_span

CHALLENGES_DIR = "challenges"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BacktestSetup:
    plan: BacktestPlan
    progress_artifact: UUID | None = None  # the run's progress over retrain origins, updated as each is calibrated


@dataclass(frozen=True)
class Retrained:
    """A retrain origin's challenger, as the nightly unit left it."""

    origin: str
    model_dir: Path
    epochs_run: int
    seconds: float
    cache_hit: bool = False


def plan_origins(dataset_path: Path, backtest: BacktestSettings, preprocessing: PreprocessingSettings) -> BacktestPlan:
    """The origins and retrain origins within the data; refused where the first retraining would have too little
    history for its spans."""
    dataset = Dataset.load(dataset_path)
    data_start, data_end = pd.Timestamp(dataset.start), pd.Timestamp(dataset.end)
    default_start, default_end = default_dates(data_end)
    plan = plan_backtest(backtest.backtest_start or default_start, backtest.backtest_end or default_end,
                         backtest.forecast_at, backtest.every, backtest.retrain_every, TIMEZONE)
    plan = BacktestPlan([origin for origin in plan.origins if origin <= data_end],
                        [origin for origin in plan.retrain_origins if origin <= data_end])
    check_within_data(plan, data_start, data_end, preprocessing.validation_days, preprocessing.min_train_days)
    log.info("backtest: %d origins from %s to %s, %d retrain origin(s)", len(plan.origins), plan.origins[0],
             plan.origins[-1], len(plan.retrain_origins))
    return plan


def calibrated_share(model_dirs: list[Path]) -> float:
    """Percent of the retrain origins whose model is trained and calibrated (its intervals are written last)."""
    return 100.0 * sum(read_intervals(folder) is not None for folder in model_dirs) / len(model_dirs)


def promotion_history(retrained: list[Retrained], challenge: Challenge) -> list[Decision]:
    """Each retrain origin's decision, in order, by the nightly rule: the challenger and the champion of the night
    are scored on the challenge's days before the origin, on the readings recorded before it. A decision is kept
    in the challenger's folder, keyed by the champion it faced."""
    decisions: list[Decision] = []
    for version, item in enumerate(retrained, start=1):
        origin = pd.Timestamp(item.origin)
        current = decisions[-1] if decisions else None
        if current is None:
            decisions.append(Decision(item.origin, version, item.model_dir.name, True, "no champion yet", None, None,
                                      version, item.model_dir.name))
            continue
        champion_dir = item.model_dir.parent / current.champion_dir
        cached = item.model_dir / CHALLENGES_DIR / f"{champion_dir.name}.json"
        if cached.exists():
            outcome = storage.read_json(cached)
        else:
            scores = score_on_newest_span([item.model_dir, champion_dir],
                                          replace(challenge, through=origin - pd.Timedelta(hours=1)))
            promoted, reason, _ = decide(scores, item.model_dir.name, champion_dir.name, current.champion_version)
            outcome = {"promoted": promoted, "reason": reason, "challenger": scores.mean_rmse[item.model_dir.name],
                       "champion": scores.mean_rmse[champion_dir.name], "cells": scores.cells}
            storage.write_json(cached, outcome)
        promoted = outcome["promoted"]
        decisions.append(Decision(item.origin, version, item.model_dir.name, promoted, outcome["reason"],
                                  outcome["challenger"], outcome["champion"],
                                  version if promoted else current.champion_version,
                                  item.model_dir.name if promoted else current.champion_dir))
        log.info("retrain origin %s: v%d %s", item.origin, version, outcome["reason"])
    return decisions


def collect_forecasts(segments: list[Segment], dataset_path: Path, output_path: Path) -> Path:
    """The long table of every issued forecast, with the reading each one was verified against (NaN where the
    target hour was not observed or lies after the data) and the model version that issued it."""
    dataset = Dataset.load(dataset_path)
    frame = pd.concat([pd.read_parquet(item.path).assign(model_version=item.version) for item in segments],
                      ignore_index=True)
    observed = pd.concat([dataset.readings(station)[["station", "timestamp", "pm25"]] for station in dataset.stations])
    observed = observed.rename(columns={"timestamp": "target_time", "pm25": "observed"})
    frame = frame.merge(observed, on=["station", "target_time"], how="left")
    frame = frame.sort_values(["station", "origin", "lead_hours"], ignore_index=True)[ISSUED_FORECAST_COLUMNS]
    return storage.write_parquet(output_path, frame)


@task(cache_policy=NO_CACHE, name="plan-backtest", task_run_name="plan the backtest's origins")
def plan_task(dataset_path: Path, backtest: BacktestSettings, preprocessing: PreprocessingSettings) -> BacktestSetup:
    """The origins, and the run's progress artifact over its retrain origins."""
    from prefect.artifacts import create_progress_artifact

    plan = plan_origins(dataset_path, backtest, preprocessing)
    progress = create_progress_artifact(progress=0.0, key="backtest-progress",
                                        description="Backtest: retrain origins trained, of "
                                                    f"{len(plan.retrain_origins)} "
                                                    f"({len(plan.origins)} forecast origins)")
    return BacktestSetup(plan, progress)


@task(cache_policy=NO_CACHE, name="backtest-progress", task_run_name="progress after {origin}")
def progress_task(progress_artifact: UUID | None, origin: str, model_dirs: list[Path]) -> float:
    """The share of retrain origins trained and calibrated, on the run's progress artifact and the terminal."""
    from prefect.artifacts import update_progress_artifact

    done = calibrated_share(model_dirs)
    if progress_artifact is not None:
        update_progress_artifact(progress_artifact, progress=done)
    log.info("retrain origin %s done (%.0f %% of the retrain origins)", origin, done,
             extra={PROGRESS: ("backtest retrain origins", round(done * len(model_dirs) / 100), len(model_dirs))})
    return done


@task(cache_policy=NO_CACHE, name="promotions", task_run_name="promotions at each retrain origin")
def promotions_task(retrained: list[Retrained], challenge: Challenge) -> list[Decision]:
    return promotion_history(retrained, challenge)


@task(cache_policy=NO_CACHE, name="collect-forecasts", task_run_name="collect the issued forecasts")
def collect_task(segments: list[Segment], dataset_path: Path, output_path: Path) -> Path:
    return collect_forecasts(segments, dataset_path, output_path)


@dataclass(frozen=True)
class Serving:
    """Which champion issues which nights' forecasts: one entry per retrain origin, in order."""

    model_dirs: list[Path]
    origins: list[list[str]]
    versions: list[int]


def serving(plan: BacktestPlan, decisions: list[Decision], models_dir: Path) -> Serving:
    return Serving([models_dir / decision.champion_dir for decision in decisions],
                   [[origin.isoformat() for origin in segment] for segment in plan.segments()],
                   [decision.champion_version for decision in decisions])
