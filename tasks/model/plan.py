"""Plan a night: for the nightly flow (as of its newest data, with a test span) or each retrain origin of a
backtest (as of the origin, on the readings recorded before it), where each station's features, the window plan and
each model go. Folders are named by their content's inputs, so a night that was done before is reused whole."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tasks.core.home import HomeFolders, weather_model_dir, window_plan_path
from tasks.core.records import Dataset
from tasks.core.settings import PreprocessingSettings, TrainingSettings
from tasks.model.train import TrainedModel

NETWORK_MODEL = "network"


def station_model(station: str) -> str:
    return f"station {station}"


@dataclass(frozen=True)
class ModelPlan:
    """The distinct models a night trains: the network's, and in the nightly flow one per station, each by name with
    its folder and stations. With one station the two are the same model (same features and settings, same folder)."""

    model_dirs: dict[str, Path]
    stations: dict[str, list[str]]

    @property
    def distinct(self) -> list[str]:
        """One name per model folder: the models to train."""
        return list({model_dir: name for name, model_dir in reversed(self.model_dirs.items())}.values())[::-1]

    def feature_paths(self, name: str, paths: dict[str, Path]) -> dict[str, Path]:
        return {station: paths[station] for station in self.stations[name]}

    def by_name(self, trained: list[TrainedModel]) -> dict[str, TrainedModel]:
        """Every model's training result, from the results of the `distinct` trainings."""
        by_dir = {model.model_dir: model for model in trained}
        return {name: by_dir[model_dir] for name, model_dir in self.model_dirs.items()}


def model_plan(home_folders: HomeFolders, features_dirs: dict[str, Path], plan_name: str, training: TrainingSettings,
               station_models: bool) -> ModelPlan:
    """Which models to train and where: the network model over every station, and with `station_models` each
    station's own."""
    wanted = {NETWORK_MODEL: (list(features_dirs), list(features_dirs.values()))}
    if station_models:
        wanted.update({station_model(station): ([station], [folder]) for station, folder in features_dirs.items()})
    return ModelPlan({name: home_folders.model(folders, plan_name, training) for name, (_, folders) in wanted.items()},
                     {name: members for name, (members, _) in wanted.items()})


@dataclass(frozen=True)
class NightlyJob:
    """One night's folders: as of when (None: the nightly flow's newest data, with a test span), each station's
    features, the window plan, and the models to train."""

    as_of: str | None
    features_dirs: dict[str, Path]
    plan_path: Path
    models: ModelPlan
    weather: bool = False  # whether the night also trains the network model's weather model

    @property
    def network_dir(self) -> Path:
        return self.models.model_dirs[NETWORK_MODEL]

    @property
    def weather_dir(self) -> Path | None:
        return weather_model_dir(self.network_dir) if self.weather else None


def plan_nights(home_folders: HomeFolders, dataset: Dataset, preprocessing: PreprocessingSettings,
                training: TrainingSettings, as_ofs: list[pd.Timestamp | None], weather: bool) -> list[NightlyJob]:
    """A night for each of `as_ofs`. As of None, the features of the whole dataset with its test span and a model
    per station beside the network's; as of a time, the features of the readings recorded before it (keyed by
    them, so a file cut after it, or with hours appended, reuses the night) and the network's model only. With
    `weather`, each night also trains the network model's weather model."""
    origins = [as_of for as_of in as_ofs if as_of is not None]
    keys = {station: dict(zip(origins, dataset.content_keys([station], origins))) for station in dataset.stations}
    jobs = []
    for as_of in as_ofs:
        if as_of is None:
            features_dirs = {station: home_folders.features(dataset.key, station, preprocessing.max_gap_hours,
                                                            preprocessing.target_transform, preprocessing.test_days,
                                                            preprocessing.validation_days)
                             for station in dataset.stations}
        else:
            features_dirs = {station: home_folders.features(keys[station][as_of], station, "before", as_of.isoformat(),
                                                            preprocessing.validation_days, preprocessing.min_train_days,
                                                            preprocessing.max_gap_hours, preprocessing.target_transform)
                             for station in dataset.stations}
        plan_path = window_plan_path(next(iter(features_dirs.values())), preprocessing.lookback_hours,
                                     preprocessing.horizon_hours)
        models = model_plan(home_folders, features_dirs, plan_path.name, training, station_models=as_of is None)
        jobs.append(NightlyJob(None if as_of is None else as_of.isoformat(), features_dirs, plan_path, models, weather))
    return jobs
