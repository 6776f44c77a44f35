"""Backtest: replay the nightly process over past origins, seeing at each origin only the readings recorded by then.

At every retrain origin R a challenger is trained on the readings before R (validation: the year before R,
training: the rest), calibrated on that validation span, and promoted by the nightly flow's rule, scored on the
same span; each origin's forecast comes from the champion of that night. Every step is cached by content: a
retrain origin's features and model by the readings before R, a decision by the two models, a segment of
forecasts by its model and the readings up to its last origin, so a killed backtest resumes where it stopped and a
file with hours appended reuses every earlier step.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from uuid import UUID

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.core import storage
from tasks.core.calibration import maps_key, read_day_maps, read_intervals, tables_key, write_day_maps, write_intervals
from tasks.core.home import Layout
from tasks.core.hours import HOURS_PER_DAY, TIMEZONE
from tasks.core.progress import PROGRESS
from tasks.core.states import finish
from tasks.data.dataset import Dataset
from tasks.model.features import PreprocessOutput, preprocess_before
from tasks.model.network_inputs import NetworkSpec
from tasks.model.train import EpochCallback, TrainingConfig, is_trained, train_model
from tasks.model.windows import build_window_plan
from tasks.operate.origins import BacktestPlan, check_within_data, default_dates, plan_backtest
from tasks.operate.promote import decide, score_on_newest_span
from tasks.publish.forecast import forecasts_at, load_saved_model, model_features, span_forecast
from tasks.scoring.categories import fit_day_map
from tasks.scoring.intervals import fit_intervals

CHALLENGES_DIR = "challenges"
SEGMENTS_DIR = "backtest_forecasts"
FORECAST_COLUMNS = ["station", "origin", "target_time", "lead_hours", "forecast", "lower_80", "upper_80",
                    "persistence", "observed", "model_version", "category_24h"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrainJob:
    """One retrain origin: where its stations' features and its model go (content-derived, see `plan_jobs`)."""

    origin: str
    features_dirs: dict[str, Path]
    model_dir: Path


@dataclass(frozen=True)
class BacktestSetup:
    plan: BacktestPlan
    jobs: list[RetrainJob]
    progress_artifact: UUID | None = None  # the run's progress over retrain origins, updated by each retraining

    @property
    def model_dirs(self) -> list[Path]:
        return [job.model_dir for job in self.jobs]


@dataclass(frozen=True)
class Retrained:
    origin: str
    model_dir: Path
    epochs_run: int
    seconds: float
    cache_hit: bool = False


@dataclass(frozen=True)
class Decision:
    """A retrain origin's challenger, the promotion decision, and the champion that serves the nights after it."""

    origin: str
    version: int
    model_dir: str
    promoted: bool
    reason: str
    challenger_score: float | None
    champion_score: float | None
    champion_version: int
    champion_dir: str


@dataclass(frozen=True)
class Segment:
    path: Path
    version: int
    origins: int
    cache_hit: bool = False


def plan_jobs(dataset_path: Path, home: Path, start: date | None, end: date | None, forecast_at: str, every: str,
              retrain_every: str, validation_days: int, min_train_days: int, max_gap_hours: int,
              target_transform: str, lookback: int, horizon: int, config: TrainingConfig) -> BacktestSetup:
    """The origins (within the data) and, per retrain origin, its features and model folders, keyed by the readings
    recorded before it and the settings."""
    dataset = Dataset.load(dataset_path)
    data_start, data_end = pd.Timestamp(dataset.start), pd.Timestamp(dataset.end)
    default_start, default_end = default_dates(data_end)
    plan = plan_backtest(start or default_start, end or default_end, forecast_at, every, retrain_every, TIMEZONE)
    plan = BacktestPlan([origin for origin in plan.origins if origin <= data_end],
                        [origin for origin in plan.retrain_origins if origin <= data_end])
    check_within_data(plan, data_start, data_end, validation_days, min_train_days)
    layout = Layout(home)
    keys = {station: dataset.content_keys([station], plan.retrain_origins) for station in dataset.stations}
    jobs = []
    for n, origin in enumerate(plan.retrain_origins):
        folders = {station: layout.features(keys[station][n], station, "before", origin.isoformat(), validation_days,
                                            min_train_days, max_gap_hours, target_transform)
                   for station in dataset.stations}
        model_dir = layout.model(list(folders.values()), window_plan_name(lookback, horizon), config)
        jobs.append(RetrainJob(origin.isoformat(), folders, model_dir))
    log.info("backtest: %d origins from %s to %s, %d retrain origin(s)", len(plan.origins), plan.origins[0],
             plan.origins[-1], len(jobs))
    return BacktestSetup(plan, jobs)


def window_plan_name(lookback: int, horizon: int) -> str:
    return f"windows_{lookback}_{horizon}.json"


def retrain(job: RetrainJob, dataset_path: Path, validation_days: int, min_train_days: int, max_gap_hours: int,
            target_transform: str, lookback: int, horizon: int, config: TrainingConfig,
            on_epoch: EpochCallback | None = None) -> Retrained:
    """Preprocess every station's readings before the origin, train the challenger and fit its intervals and its
    category maps."""
    origin = pd.Timestamp(job.origin)
    prepared: dict[str, PreprocessOutput] = {
        station: preprocess_before(dataset_path, station, origin, folder, validation_days=validation_days,
                                   min_train_hours=min_train_days * HOURS_PER_DAY, max_gap_hours=max_gap_hours,
                                   target_transform=target_transform)
        for station, folder in job.features_dirs.items()}
    first_station = next(iter(prepared))
    plan_path = job.features_dirs[first_station] / window_plan_name(lookback, horizon)
    if not plan_path.exists():
        build_window_plan(prepared[first_station].features_path, prepared[first_station].params_path, lookback, horizon,
                          plan_path)
    trained = train_model({station: output.features_path for station, output in prepared.items()},
                          {station: output.params_path for station, output in prepared.items()}, plan_path,
                          job.model_dir, config, on_epoch)
    calibrate(dataset_path, job.model_dir, origin, validation_days)
    return Retrained(job.origin, job.model_dir, trained.epochs_run, trained.seconds, trained.cache_hit)


def calibrate(dataset_path: Path, model_dir: Path, origin: pd.Timestamp, validation_days: int) -> None:
    """80 % interval tables (`tasks.scoring.intervals`) and the maps of the 24-hour category (`tasks.scoring.categories`) per
    station: from the model's forecasts of the `validation_days` before `origin`, as in `pm25 run`. Tables or maps
    of an earlier method are fitted again."""
    if read_intervals(model_dir) is not None and read_day_maps(model_dir) is not None:
        return
    model = load_saved_model(model_dir)
    features = model_features(Dataset.load(dataset_path), model, origin - pd.Timedelta(hours=1))
    hours = len(next(iter(features.values())))
    validation = span_forecast(features, model, hours - validation_days * HOURS_PER_DAY)
    write_day_maps(model_dir, {station: fit_day_map(observed, forecast)
                               for station, (_, observed, forecast, _) in validation.items()})
    write_intervals(model_dir, {station: fit_intervals(observed, forecast)  # last: what marks the origin calibrated
                                for station, (_, observed, forecast, _) in validation.items()})


def promotion_history(retrained: list[Retrained], dataset_path: Path, validation_days: int) -> list[Decision]:
    """Each retrain origin's decision, in order, by the nightly rule: the challenger and the champion of the night
    are scored on the `validation_days` before the origin, on the readings recorded before it. A decision is kept
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
            scores = score_on_newest_span(dataset_path, [item.model_dir, champion_dir], validation_days,
                                          origin - pd.Timedelta(hours=1))
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


def forecast_segment(dataset_path: Path, model_dir: Path, origins: list[str], version: int) -> Segment:
    """The champion's forecasts from each of `origins` (consecutive nights it serves), with their intervals, the
    category issued for the next 24 hours and persistence, reading nothing recorded after the segment's last origin
    (and each window nothing after its own). Kept in the model's folder, keyed by the origins and the readings up
    to the last one."""
    dataset = Dataset.load(dataset_path)
    stamps = pd.DatetimeIndex([pd.Timestamp(origin) for origin in origins]).tz_convert(TIMEZONE)
    last = stamps[-1]
    intervals, day_maps = read_intervals(model_dir), read_day_maps(model_dir)
    readings = dataset.content_key(NetworkSpec.load(model_dir).stations, last + pd.Timedelta(hours=1))
    key = storage.fingerprint(origins, readings, tables_key(intervals), maps_key(day_maps))
    path = model_dir / SEGMENTS_DIR / f"{key}.parquet"
    if path.exists():
        return Segment(path, version, len(origins), cache_hit=True)
    model = load_saved_model(model_dir)
    features = model_features(dataset, model, last)
    timestamps = pd.DatetimeIndex(next(iter(features.values()))["timestamp"])
    rows = timestamps.get_indexer(stamps)
    horizon = model.plan.horizon
    leads = np.arange(1, horizon + 1)
    frames = []
    for station, forecast in forecasts_at(features, model, rows).items():
        reading = features[station]["target"].to_numpy(dtype="float64")[rows]
        lower, upper = intervals[station].bounds(forecast)
        day_category = (day_maps[station].issue(forecast) if horizon >= HOURS_PER_DAY
                        else [pd.NA] * len(rows))  # no category for a horizon shorter than a day
        frames.append(pd.DataFrame({
            "station": station,
            "origin": np.repeat(stamps, horizon),
            "target_time": (np.repeat(stamps, horizon) + pd.to_timedelta(np.tile(leads, len(rows)), unit="h")),
            "lead_hours": np.tile(leads, len(rows)),
            "forecast": forecast.ravel(),
            "lower_80": lower.ravel(),
            "upper_80": upper.ravel(),
            "persistence": np.repeat(reading, horizon),
            "category_24h": pd.array(np.repeat(day_category, horizon), dtype="Int8"),
        }))
    storage.write_parquet(path, pd.concat(frames, ignore_index=True))
    return Segment(path, version, len(origins))


def collect_forecasts(segments: list[Segment], dataset_path: Path, output_path: Path) -> Path:
    """The long table of every issued forecast, with the reading each one was verified against (NaN where the
    target hour was not observed or lies after the data) and the model version that issued it."""
    dataset = Dataset.load(dataset_path)
    frame = pd.concat([pd.read_parquet(item.path).assign(model_version=item.version) for item in segments],
                      ignore_index=True)
    observed = pd.concat([dataset.readings(station)[["station", "timestamp", "pm25"]] for station in dataset.stations])
    observed = observed.rename(columns={"timestamp": "target_time", "pm25": "observed"})
    frame = frame.merge(observed, on=["station", "target_time"], how="left")
    frame = frame.sort_values(["station", "origin", "lead_hours"], ignore_index=True)[FORECAST_COLUMNS]
    return storage.write_parquet(output_path, frame)


@task(cache_policy=NO_CACHE, name="plan-backtest", task_run_name="plan the backtest's origins")
def plan_task(dataset_path: Path, home: Path, start: date | None, end: date | None, forecast_at: str, every: str,
              retrain_every: str, validation_days: int, min_train_days: int, max_gap_hours: int, target_transform: str,
              lookback: int, horizon: int, config: TrainingConfig) -> BacktestSetup:
    from prefect.artifacts import create_progress_artifact

    setup = plan_jobs(dataset_path, home, start, end, forecast_at, every, retrain_every, validation_days,
                      min_train_days, max_gap_hours, target_transform, lookback, horizon, config)
    progress = create_progress_artifact(progress=retrained_share(setup.model_dirs), key="backtest-progress",
                                        description=f"Backtest: retrain origins trained, of {len(setup.jobs)} "
                                                    f"({len(setup.plan.origins)} forecast origins)")
    return replace(setup, progress_artifact=progress)


def retrained_share(model_dirs: list[Path]) -> float:
    """Percent of the retrain origins whose model (and its intervals) exists."""
    done = sum(is_trained(folder) and read_intervals(folder) is not None for folder in model_dirs)
    return 100.0 * done / len(model_dirs)


@task(cache_policy=NO_CACHE, name="retrain", task_run_name="retrain at {job.origin}")
def retrain_task(job: RetrainJob, dataset_path: Path, validation_days: int, min_train_days: int, max_gap_hours: int,
                 target_transform: str, lookback: int, horizon: int, config: TrainingConfig,
                 all_model_dirs: list[Path], progress_artifact: UUID | None) -> Retrained:
    """One retrain origin; when it ends, the backtest's progress artifact shows the share of origins trained."""
    from prefect.artifacts import update_progress_artifact

    result = retrain(job, dataset_path, validation_days, min_train_days, max_gap_hours, target_transform, lookback,
                     horizon, config)
    done = retrained_share(all_model_dirs)
    if progress_artifact is not None:
        update_progress_artifact(progress_artifact, progress=done)
    log.info("retrain origin %s %s (%.0f %% of the retrain origins done)", job.origin,
             "reused" if result.cache_hit else f"trained in {result.seconds:.1f} s", done,
             extra={PROGRESS: ("backtest retrain origins", round(done * len(all_model_dirs) / 100),
                               len(all_model_dirs))})
    return finish(result, result.cache_hit, "retrain")


@task(cache_policy=NO_CACHE, name="promotions", task_run_name="promotions at each retrain origin")
def promotions_task(retrained: list[Retrained], dataset_path: Path, validation_days: int) -> list[Decision]:
    return promotion_history(retrained, dataset_path, validation_days)


@task(cache_policy=NO_CACHE, name="backtest-forecasts", task_run_name="forecasts of v{version} from {origins[0]}")
def segment_task(dataset_path: Path, model_dir: Path, origins: list[str], version: int) -> Segment:
    segment = forecast_segment(dataset_path, model_dir, origins, version)
    return finish(segment, segment.cache_hit, "backtest-forecasts")


@task(cache_policy=NO_CACHE, name="collect-forecasts", task_run_name="collect the issued forecasts")
def collect_task(segments: list[Segment], dataset_path: Path, output_path: Path) -> Path:
    return collect_forecasts(segments, dataset_path, output_path)


@dataclass(frozen=True)
class Serving:
    """Which champion issues which nights' forecasts: one entry per retrain origin, in order."""

    model_dirs: list[Path]
    origins: list[list[str]]
    versions: list[int]


def serving(setup: BacktestSetup, decisions: list[Decision]) -> Serving:
    models_dir = setup.jobs[0].model_dir.parent
    return Serving([models_dir / decision.champion_dir for decision in decisions],
                   [[origin.isoformat() for origin in segment] for segment in setup.plan.segments()],
                   [decision.champion_version for decision in decisions])
