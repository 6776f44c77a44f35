"""The nightly unit: preprocess → windows → train → calibrate (and, where the night reads the weather, the network
model's weather model trained and calibrated beside it), for one night, as the nightly flow (`flows/train.py`)
and every retrain origin of its backtest (`flows/backtest.py`) run it. Its tasks run on the calling flow's task
runner; `submit_night` returns at once, so a backtest's nights run side by side."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prefect import task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture, PrefectFutureList

from tasks.core.home import features_files
from tasks.core.settings import Settings
from tasks.core.states import finish
from tasks.core.weather import NOISY_TRACK, PERFECT_TRACK
from tasks.model.features import preprocess_task
from tasks.model.plan import NETWORK_MODEL, NightlyJob
from tasks.model.predict import validation_forecasts, weather_validation_forecasts
from tasks.model.train import TrainedModel, TrainingInputs, train_task, training_tags
from tasks.model.weather_model import train_weather_task
from tasks.model.windows import windows_task
from tasks.scoring.calibrate import calibrate, calibrate_tracks, is_calibrated, tracks_calibrated


@task(cache_policy=NO_CACHE, name="calibrate", task_run_name="calibrate {model_dir.name}")
def calibrate_task(dataset_path: Path, model_dir: Path, validation_days: int) -> Path:
    """The model's forecasts of its validation span (the model stage) meet the fits of its intervals and category
    maps (the scoring stage) here, in memory; a model calibrated by today's methods is left as it is."""
    if is_calibrated(model_dir):
        return finish(model_dir, True, "calibrate")
    return calibrate(model_dir, validation_forecasts(dataset_path, model_dir, validation_days))


@task(cache_policy=NO_CACHE, name="calibrate-weather", task_run_name="calibrate the weather model of {model_dir.parent.name}")
def calibrate_weather_task(feature_paths: dict[str, Path], model_dir: Path, seed: int) -> Path:
    """The weather model's intervals and category maps: its own from the noisy track (the errors a real forecast
    brings), the perfect track's beside them."""
    tracks = [PERFECT_TRACK, NOISY_TRACK]
    if tracks_calibrated(model_dir, tracks, NOISY_TRACK):
        return finish(model_dir, True, "calibrate")
    return calibrate_tracks(model_dir, weather_validation_forecasts(feature_paths, model_dir, seed), NOISY_TRACK)


@dataclass(frozen=True)
class Night:
    """What a night leaves: every model's training result, by name, and its job."""

    job: NightlyJob
    trained: dict[str, TrainedModel]

    @property
    def network(self) -> TrainedModel:
        return self.trained[NETWORK_MODEL]


@dataclass(frozen=True)
class SubmittedNight:
    job: NightlyJob
    trainings: PrefectFutureList
    calibrated: PrefectFuture
    weather: tuple[PrefectFuture, PrefectFuture] | None = None  # its training and calibration

    def result(self) -> Night:
        """Wait for the night's trainings and calibrations."""
        trained = self.trainings.result()
        self.calibrated.result()
        for future in self.weather or ():
            future.result()
        return Night(self.job, self.job.models.by_name(trained))


def submit_night(dataset_path: Path, job: NightlyJob, settings: Settings) -> SubmittedNight:
    """Submit the night's tasks, each waiting for those it reads: every station's features, the window plan, the
    trainings, then the network model's calibration on its validation span."""
    preprocessing = settings.preprocessing
    stations = list(job.features_dirs)
    files = {station: features_files(folder) for station, folder in job.features_dirs.items()}
    prepared = preprocess_task.map(dataset_path, stations, list(job.features_dirs.values()), unmapped(preprocessing),
                                   job.as_of)
    plan = windows_task.submit(*files[stations[0]], preprocessing.lookback_hours, preprocessing.horizon_hours,
                               job.plan_path, wait_for=[prepared[0]])
    names = job.models.distinct
    inputs = [TrainingInputs(job.models.feature_paths(name, {s: paths[0] for s, paths in files.items()}),
                             job.models.feature_paths(name, {s: paths[1] for s, paths in files.items()}), job.plan_path)
              for name in names]
    timeout, model_dirs = settings.training_timeout_seconds, [job.models.model_dirs[name] for name in names]
    trainings = train_task.with_options(tags=training_tags(model_dirs)).map(
        names, inputs, model_dirs, unmapped(settings.training), unmapped(timeout), wait_for=[plan, *prepared])
    calibrated = calibrate_task.submit(dataset_path, job.network_dir, preprocessing.validation_days,
                                       wait_for=list(trainings))
    weather = None
    if job.weather_dir is not None:
        network_inputs = inputs[names.index(NETWORK_MODEL)]
        trained = train_weather_task.with_options(tags=training_tags([job.weather_dir])).submit(
            network_inputs, job.weather_dir, settings.training, timeout, wait_for=[plan, *prepared])
        weather = trained, calibrate_weather_task.submit(network_inputs.feature_paths, job.weather_dir, settings.seed,
                                                         wait_for=[trained])
    return SubmittedNight(job, trainings, calibrated, weather)
