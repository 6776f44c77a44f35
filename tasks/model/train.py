"""Train: a seeded Keras LSTM that forecasts the next `horizon` hours at once, with early stopping.

The network predicts the change of PM2.5 (in standardised model space) from the last input hour; a
missing target hour is masked out of the loss, never filled. Each horizon's change is divided by its
training spread, and the loss weighs the near horizons more (see `horizon_weights`).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.core import storage
from tasks.core.errors import TrainingTimeout
from tasks.core.home import MODEL_FILE, TRAINING_LOG, TRAINING_SUMMARY, WINDOWS_FILE, artifact_key
from tasks.core.progress import PROGRESS
from tasks.core.settings import TrainingSettings
from tasks.core.states import finish
from tasks.model.network_inputs import SHARED_FEATURES, NetworkSpec, save_network, stacked_span
from tasks.model.windows import WindowPlan, WindowSet

# Keras's global seed and TensorFlow's thread pools belong to the process: two trainings at once in one process (the
# thread task runner) would reseed each other and share the cores, so a process trains one model at a time. A model
# saved before its layers had explicit seeds (LayerSeeds) draws some as it loads, so loads take the same lock.
TRAINING_LOCK = threading.RLock()
# Across processes, the tag of every training task that trains (see training_tags): a Prefect server's concurrency
# limit on it (`pm25 automations apply`) queues the trainings of different runs on one worker instead of letting them
# share its cores.
TRAINING_TAG = "pm25-train"
# Training steps per call into TensorFlow: the same updates and losses, without Python between every two
# batches (6 epochs of the default model on 2 cores: 5.3 s against 6.2 s one step at a time).
STEPS_PER_EXECUTION = 32

log = logging.getLogger(__name__)

EpochCallback = Callable[[int, dict[str, float]], None]
ModelInputs = np.ndarray | tuple[np.ndarray, ...]  # a model's inputs: the look-back windows, and what else it reads


@dataclass(frozen=True)
class TrainedModel:
    model_dir: Path
    model_path: Path
    epochs_run: int
    best_epoch: int
    best_val_loss: float
    seconds: float
    change_scale: list[float]
    cache_hit: bool = False


def configure_tensorflow(seed: int, members: int = 1) -> None:
    """Seed every generator, make TensorFlow's ops deterministic, and share the cores among the ensemble's members.

    The same data and settings then give the same weights, run after run (what the backtest's no-peeking test
    relies on); deterministic ops cost at most about 4 % of training time here (docs/backtest.md).

    An LSTM step is a chain of small ops that one core runs about as fast as two, so the members run
    side by side (one op of each at a time) with the cores split between them: on two cores a two-member
    ensemble trains in about the time of one model. TensorFlow never gets more threads than the task's cores:
    on a single-threaded Dask worker the members take turns.
    """
    import keras
    import tensorflow as tf

    cores = task_cores()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(max(1, cores // members))
        tf.config.threading.set_inter_op_parallelism_threads(max(1, min(members, cores)))
    except RuntimeError:
        pass  # TensorFlow was already initialised in this process; its thread pools are fixed now.
    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(seed)


class LayerSeeds:
    """The seed of every random part of a model (initializers, dropout), given to Keras explicitly, drawn in build
    order from a generator of the run's seed.

    Keras draws an unseeded part's seed from Python's global `random`, which other threads of the process draw from
    too (a Dask worker's background threads do within a second of a task starting), so the weights would depend on
    their timing. Seeded here, a model draws nothing from it. The draws are those Keras would make after
    `random.seed(seed)` (an integer in 1..10⁹ each, in the order Keras builds the parts), so the weights are the ones
    an undisturbed process gave.
    """

    def __init__(self, seed: int) -> None:
        self._draws = random.Random(seed)

    def draw(self) -> int:
        return self._draws.randint(1, 10**9)

    def lstm(self, units: int, **options: Any) -> Any:
        import keras

        kernel = keras.initializers.GlorotUniform(self.draw())
        recurrent = keras.initializers.Orthogonal(seed=self.draw())
        return keras.layers.LSTM(units, kernel_initializer=kernel, recurrent_initializer=recurrent, seed=self.draw(),
                                 **options)

    def dense(self, units: int, **options: Any) -> Any:
        import keras

        return keras.layers.Dense(units, kernel_initializer=keras.initializers.GlorotUniform(self.draw()), **options)

    def dropout(self, rate: float, **options: Any) -> Any:
        import keras

        return keras.layers.Dropout(rate, seed=self.draw() if rate > 0 else None, **options)  # 0 draws nothing


def task_cores() -> int:
    """The cores a task may use: its Dask worker's threads when it runs on one, else the machine's."""
    try:
        from distributed import get_worker

        return get_worker().state.nthreads
    except (ImportError, ValueError):
        return os.cpu_count() or 1


def masked_mse(horizon_weight: np.ndarray, members: int = 1):
    """Mean squared error over the observed (non-NaN) target hours only, horizon h weighted by horizon_weight[h].

    With several members the prediction holds each member's horizons side by side; every member is scored
    against the same targets and the loss is the members' mean (no member's gradient reaches another).
    """
    from keras import ops

    horizon = len(horizon_weight)
    weight = ops.convert_to_tensor(np.asarray(horizon_weight, dtype="float32"))

    def loss(y_true, y_pred):
        observed = ops.logical_not(ops.isnan(y_true))
        target = ops.where(observed, y_true, 0.0)[:, None, :]
        error = ops.reshape(y_pred, (-1, members, horizon)) - target
        squared = ops.where(observed[:, None, :], ops.square(error), 0.0) * weight
        count = ops.maximum(ops.sum(ops.cast(observed, "float32")), 1.0) * members
        return ops.sum(squared) / count

    return loss


def build_model(lookback: int, n_features: int, horizon: int, settings: TrainingSettings):
    """An ensemble of `ensemble_size` independent networks, as two models that share their layers: one to train,
    whose output holds every member's forecast, and one to save and forecast with, whose output is their mean.

    A member is `lstm_layers` stacked LSTM layers whose last state, beside the origin hour's inputs as they are,
    feeds a dense head with one output per horizon: that direct path to the newest readings is what the
    nearest hours' forecasts lean on most. With `weight_averaging` > 0 the optimizer also keeps a moving
    average of the weights with that momentum (see `train_model`).
    """
    import keras

    history = keras.Input(shape=(lookback, n_features), name="history")
    origin_hour = keras.layers.Flatten(name="origin_hour")(keras.layers.Cropping1D((lookback - 1, 0))(history))

    def head(member: int, state: Any, seeds: LayerSeeds) -> Any:
        joined = keras.layers.Concatenate(name=f"m{member}_state_and_origin")([state, origin_hour])
        return seeds.dense(horizon, name=f"m{member}_change_per_horizon")(joined)

    return lstm_ensemble(history, history, head, horizon, settings, "pm25_lstm")


def lstm_ensemble(inputs: Any, history: Any, head: Callable[[int, Any, LayerSeeds], Any], horizon: int,
                  settings: TrainingSettings, name: str) -> tuple[Any, Any]:
    """The ensemble of `build_model`, around each member's head: `lstm_layers` stacked LSTM layers read `history` (one
    of the model's `inputs`), and `head(member, state, seeds)` turns the last state, after dropout, into the member's
    change per horizon (its layers seeded from `seeds`, in order). Returns the model to train (every member's outputs side by side, compiled) and the one to forecast
    with (their mean)."""
    import keras

    layers, units, dropout, members = settings.lstm_layers, settings.lstm_units, settings.dropout, settings.ensemble_size
    seeds = LayerSeeds(settings.seed)
    forecasts = []
    for member in range(1, members + 1):
        hidden = history
        for layer in range(1, layers + 1):
            hidden = seeds.lstm(units, return_sequences=layer < layers, dropout=dropout,
                                name=f"m{member}_lstm_{layer}")(hidden)
        hidden = seeds.dropout(dropout, name=f"m{member}_head_dropout")(hidden)
        forecasts.append(head(member, hidden, seeds))
    several = members > 1
    training = keras.Model(inputs, keras.layers.Concatenate(name="members")(forecasts) if several else forecasts[0],
                           name=f"{name}_members")
    averaging = {"use_ema": True, "ema_momentum": settings.weight_averaging} if settings.weight_averaging else {}
    training.compile(optimizer=keras.optimizers.Adam(settings.learning_rate, **averaging),
                     loss=masked_mse(horizon_weights(horizon, settings.horizon_weight_power), members),
                     steps_per_execution=STEPS_PER_EXECUTION)
    forecasting = keras.Model(inputs, keras.layers.Average(name="ensemble_mean")(forecasts) if several else forecasts[0],
                              name=name)
    return training, forecasting


def change_targets(windows: WindowSet) -> np.ndarray:
    """Each horizon's value minus the last input value (NaN where unobserved)."""
    return windows.targets - windows.last_value[:, None]


def horizon_weights(horizon: int, power: float) -> np.ndarray:
    """Loss weight of each horizon h = 1 … horizon, proportional to h**-power and averaging 1.

    With power > 0 the near hours, whose errors are smaller and which a forecast can still improve most,
    count more than they would under a plain mean of the (already spread-normalised) errors.
    """
    weights = np.arange(1, horizon + 1, dtype="float64") ** -power
    return weights / weights.mean()


def fit_change_scale(train_changes: np.ndarray) -> np.ndarray:
    """Per-horizon spread of the training span's changes (`change_targets`).

    The model learns change/scale, so each horizon's errors are on one scale in the loss; otherwise the
    large day-ahead errors drown the hour-ahead ones.
    """
    return np.nanstd(train_changes, axis=0).astype("float32")


def training_batches(inputs: ModelInputs, targets: np.ndarray, batch_size: int, shuffle: bool):
    """The batches Keras draws from arrays (the inputs one array, or a tuple of them for a model of several inputs),
    drawn in the thread that asks for them.

    Keras's own pipeline for arrays draws a permutation of the samples (seeded by `configure_tensorflow`; each
    pass, so each epoch, draws the same one), cuts it into batches and gathers each batch, with the gathers and a
    prefetch on background threads. On a single-threaded Dask worker the training waits for those threads: two
    trainings side by side on two cores ran 1.12 to 1.17 times slower than one alone, against 0.96 to 1.05 with
    this pipeline (`benchmarks/paired_training.py`). This is the same pipeline without the parallel map and the
    prefetches: the same permutation, the same batches, so the same weights, to the bit.
    """
    samples = len(inputs[0] if isinstance(inputs, tuple) else inputs)
    return gathered_batches(batch_indices(samples, batch_size, shuffle), inputs, targets, -(-samples // batch_size))


def batch_indices(samples: int, batch_size: int, shuffle: bool):
    """The sample numbers of each batch of one pass, as Keras's pipeline for arrays draws them: one permutation (the
    same every pass), cut into full batches and a last, partial one."""
    import tensorflow as tf

    full_batches = samples // batch_size

    def permutation(_):
        indices = tf.range(samples, dtype=tf.int64)
        return tf.random.shuffle(indices) if shuffle else indices

    def batches_of(indices):
        in_full = full_batches * batch_size
        batches = tf.data.Dataset.from_tensor_slices(tf.reshape(tf.slice(indices, [0], [in_full]),
                                                                [full_batches, batch_size]))
        if samples > in_full:
            batches = batches.concatenate(tf.data.Dataset.from_tensors(tf.slice(indices, [in_full],
                                                                                [samples - in_full])))
        return batches

    return tf.data.Dataset.range(1).map(permutation).flat_map(batches_of)


def gathered_batches(indices, inputs: ModelInputs, targets: np.ndarray, batches: int):
    """The rows of `inputs` and `targets` that each element of `indices` (a dataset of index vectors, `batches`
    of them a pass) names, gathered in the thread that asks for them (see `training_batches`)."""
    import tensorflow as tf

    arrays = (tf.nest.map_structure(tf.constant, inputs), tf.constant(targets))
    dataset = tf.data.Dataset.zip((indices, tf.data.Dataset.from_tensors(arrays).repeat())).map(
        lambda batch, data: (tf.nest.map_structure(lambda array: tf.gather(array, batch, axis=0), data[0]),
                             tf.gather(data[1], batch, axis=0)))
    # A flat_map hides the number of batches; told it, Keras ends each pass on the count instead of running out of
    # data, which it warns about as if the dataset were too short.
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches))
    options = tf.data.Options()
    options.autotune.enabled = False
    options.threading.private_threadpool_size = 1
    options.experimental_optimization.apply_default_optimizations = False
    options.experimental_optimization.inject_prefetch = False
    options.experimental_external_state_policy = tf.data.experimental.ExternalStatePolicy.IGNORE
    return dataset.with_options(options)


def stopping_callbacks(patience: int, weight_averaging: float) -> list:
    """Early stopping on validation loss that restores the best epoch's weights.

    With weight averaging, the averaged weights are the ones validated after each epoch, and so the ones
    early stopping keeps and restores: SwapEMAWeights swaps them in before the callbacks after it run.
    """
    import keras

    stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
    return [keras.callbacks.SwapEMAWeights(swap_on_epoch=True), stopper] if weight_averaging else [stopper]


def _epoch_reporter(on_epoch: EpochCallback | None, model_dir: Path, max_epochs: int):
    import keras

    class EpochReporter(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = {key: float(value) for key, value in (logs or {}).items()}
            log.info("epoch %d: %s", epoch + 1, ", ".join(f"{k} {v:.4f}" for k, v in logs.items()),
                     extra={PROGRESS: (f"training {model_dir.name} (epochs, at most)", epoch + 1, max_epochs)})
            if on_epoch is not None:
                on_epoch(epoch + 1, logs)

    return EpochReporter()


def training_deadline(model_dir: Path, seconds: float):
    """A Keras callback that ends a training still going after `seconds`, at the end of a batch, with TrainingTimeout:
    the task fails with its timeout named, and nothing of the unfinished model is saved. (Prefect's own task timeout
    cannot interrupt a training on a worker thread: it would only act once the training has returned.)"""
    import keras

    class TrainingDeadline(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.ends_at = time.monotonic() + seconds

        def on_train_batch_end(self, batch, logs=None):
            if time.monotonic() > self.ends_at:
                raise TrainingTimeout(f"training {model_dir} ran past its timeout of {seconds:g} s "
                                      "(PM25_TRAINING_TIMEOUT_SECONDS); nothing of it was saved")

    return TrainingDeadline()


def training_tags(model_dirs: Sequence[Path]) -> list[str]:
    """The tags of the training tasks of `model_dirs`: TRAINING_TAG when any of them will train; none when all are
    cache hits, which need no slot. (Asking for one costs a cached run about 2 s on Prefect's temporary server, whose
    SQLite answers 503 when writes collide, and Prefect's client retries after a backoff.)"""
    return [] if all(is_trained(model_dir) for model_dir in model_dirs) else [TRAINING_TAG]


def is_trained(model_dir: Path) -> bool:
    """Whether `model_dir` holds a complete model (its summary is written last)."""
    return (model_dir / TRAINING_SUMMARY).exists() and (model_dir / MODEL_FILE).exists()


@dataclass(frozen=True)
class TrainingInputs:
    """What a model is trained on: each station's features and fitted preprocessing, and the window plan."""

    feature_paths: dict[str, Path]
    params_paths: dict[str, Path]
    plan_path: Path


@dataclass(frozen=True)
class TrainingSamples:
    """A model's training and validation samples, and the files it keeps beside itself to forecast as it was trained
    (name → JSON payload; the weather model's scaling of the weather)."""

    train: WindowSet
    validation: WindowSet
    kept: dict[str, Any] = field(default_factory=dict)


def network_samples(inputs: TrainingInputs, spec: NetworkSpec, plan: WindowPlan) -> TrainingSamples:
    """Every station's training and validation samples, stacked in the network's station order."""
    features = {station: pd.read_parquet(inputs.feature_paths[station]) for station in spec.stations}
    return TrainingSamples(stacked_span(features, spec, plan, "train"), stacked_span(features, spec, plan, "validation"))


@dataclass(frozen=True)
class ModelRecipe:
    """How a model is made from its inputs: what it reads of every station of the network and whether it reads
    which station a sample is from (`tasks.model.network_inputs`), how it is built, how its batches are drawn and
    what ends its epochs, and which samples it learns from. The default is the project's model; a benchmark's
    candidate is another recipe (`benchmarks/network_sweep.py`), never a module function swapped, and so is the weather
    model (`tasks/model/weather_model.py`), whose samples also carry the weather of the hours they forecast and whose
    build receives how many inputs an hour of it has."""

    shared_features: tuple[str, ...] = SHARED_FEATURES
    station_one_hot: bool = True
    build: Callable[..., tuple[Any, Any]] = build_model
    samples: Callable[[TrainingInputs, NetworkSpec, WindowPlan], TrainingSamples] = network_samples
    batches: Callable[[np.ndarray, np.ndarray, int, bool], Any] = training_batches
    callbacks: Callable[[int, float], list] = stopping_callbacks


DEFAULT_RECIPE = ModelRecipe()


def train_model(inputs: TrainingInputs, model_dir: Path, config: TrainingSettings, on_epoch: EpochCallback | None = None,
                recipe: ModelRecipe = DEFAULT_RECIPE, timeout_seconds: float | None = None) -> TrainedModel:
    """Fit on the train span of every station given, stop early on their validation span (restoring the best
    weights), save `.keras`; a fit still going after `timeout_seconds` fails with TrainingTimeout.

    The model folder also receives the stations, their preprocessing parameters and the window plan, so it is
    self-contained.
    """
    summary_path = model_dir / TRAINING_SUMMARY
    if is_trained(model_dir):
        log.info("training cache hit: %s holds a model for these data and settings", model_dir)
        return TrainedModel(model_dir=model_dir, model_path=model_dir / MODEL_FILE, cache_hit=True,
                            **storage.read_json(summary_path))
    plan = WindowPlan.from_json(storage.read_json(inputs.plan_path))
    spec = NetworkSpec.of(list(inputs.feature_paths), plan.feature_columns, recipe.shared_features,
                          recipe.station_one_hot)
    samples = recipe.samples(inputs, spec, plan)
    train, validation = samples.train, samples.validation
    with TRAINING_LOCK:
        if is_trained(model_dir):  # trained by another task of this process while this one waited
            return TrainedModel(model_dir=model_dir, model_path=model_dir / MODEL_FILE, cache_hit=True,
                                **storage.read_json(summary_path))
        configure_tensorflow(config.seed, config.ensemble_size)
        log.info("training on %d samples of %d station(s), %d inputs per hour", len(train.inputs), len(spec.stations),
                 train.inputs.shape[2])
        monitors = [_epoch_reporter(on_epoch, model_dir, config.max_epochs)]
        if timeout_seconds is not None:
            monitors.append(training_deadline(model_dir, timeout_seconds))
        forecaster, summary = _fit(train, validation, model_dir, config, recipe, monitors)
        _save(model_dir, forecaster, spec, inputs, samples.kept, summary)
    return TrainedModel(model_dir=model_dir, model_path=model_dir / MODEL_FILE, **summary)


def _fit(train: WindowSet, validation: WindowSet, model_dir: Path, config: TrainingSettings, recipe: ModelRecipe,
         monitors: list) -> tuple[Any, dict[str, Any]]:
    """The fitted forecasting model and the training summary; the epochs' log goes to `model_dir`; `monitors` are
    Keras callbacks that watch the fit (its progress, its deadline)."""
    import keras

    _, lookback, n_features = train.inputs.shape
    future = {} if train.future is None else {"future_inputs": train.future.shape[2]}
    model, forecaster = recipe.build(lookback, n_features, train.targets.shape[1], config, **future)
    model_dir.mkdir(parents=True, exist_ok=True)
    log_path = model_dir / TRAINING_LOG
    started = time.perf_counter()
    train_changes = change_targets(train)
    change_scale = fit_change_scale(train_changes)
    history = model.fit(
        recipe.batches(train.model_inputs, train_changes / change_scale, config.batch_size, True),
        validation_data=recipe.batches(validation.model_inputs, change_targets(validation) / change_scale,
                                       config.batch_size, False),
        epochs=config.max_epochs,
        shuffle=False,  # training_batches shuffles; Keras would only warn that it cannot shuffle a dataset
        verbose=0,
        callbacks=[*recipe.callbacks(config.patience, config.weight_averaging), keras.callbacks.CSVLogger(str(log_path)),
                   *monitors],
    )
    seconds = time.perf_counter() - started
    val_losses = history.history["val_loss"]
    best_epoch = int(np.argmin(val_losses)) + 1
    summary = {"epochs_run": len(val_losses), "best_epoch": best_epoch, "best_val_loss": float(val_losses[best_epoch - 1]),
              "seconds": seconds, "change_scale": change_scale.tolist()}
    log.info("trained %d epochs in %.1f s; best epoch %d (val loss %.4f)", len(val_losses), seconds, best_epoch,
             summary["best_val_loss"])
    return forecaster, summary


def _save(model_dir: Path, forecaster: Any, spec: NetworkSpec, inputs: TrainingInputs, kept: dict[str, Any],
          summary: dict[str, Any]) -> None:
    """The model, its stations and their preprocessing, its window plan, what its samples keep beside it, then its
    summary (last: its presence marks a complete model folder)."""
    storage.write_atomically(model_dir / MODEL_FILE, lambda path: forecaster.save(str(path)))
    save_network(model_dir, spec, inputs.params_paths)
    storage.write_bytes(model_dir / WINDOWS_FILE, inputs.plan_path.read_bytes())
    for name, payload in kept.items():
        storage.write_json(model_dir / name, payload)
    storage.write_json(model_dir / TRAINING_SUMMARY, summary)




def load_model(model_path: Path):
    """Load a saved model for inference, refusing unsafe (lambda) deserialisation (under the training lock: see
    TRAINING_LOCK)."""
    import keras

    with TRAINING_LOCK:
        return keras.saving.load_model(model_path, compile=False, safe_mode=True)


def load_change_predictor(model_dir: Path) -> Callable[[np.ndarray], np.ndarray]:
    """Load the model once; the returned function maps input windows to the forecast change from the last
    input hour, per horizon, in standardised target space."""
    scale = np.asarray(storage.read_json(model_dir / TRAINING_SUMMARY)["change_scale"], dtype="float32")
    model = load_model(model_dir / MODEL_FILE)

    def predict(inputs: ModelInputs) -> np.ndarray:
        arrays = [np.ascontiguousarray(array) for array in inputs] if isinstance(inputs, tuple) else np.ascontiguousarray(inputs)
        return model.predict(arrays, batch_size=1024, verbose=0) * scale

    return predict



def _train_run_name() -> str:
    from prefect import runtime

    stations = runtime.task_run.parameters["inputs"].feature_paths
    return f"train {runtime.task_run.parameters['name']} ({len(stations)} station{'s' if len(stations) > 1 else ''})"


def train_with_progress(name: str, inputs: TrainingInputs, model_dir: Path, config: TrainingSettings,
                        timeout_seconds: float, recipe: ModelRecipe = DEFAULT_RECIPE) -> TrainedModel | Any:
    """Train in a Prefect task, its epochs shown as a progress artifact, for at most `timeout_seconds`; a cache hit
    ends in the Cached state."""
    from prefect.artifacts import create_progress_artifact, update_progress_artifact

    if is_trained(model_dir):  # a cache hit: no epochs to show
        return finish(train_model(inputs, model_dir, config, recipe=recipe), True, "train")
    progress = create_progress_artifact(progress=0.0, key=f"training-progress-{artifact_key(name)}",
                                        description=f"Training {name}: epochs (at most {config.max_epochs}; "
                                                    "early stopping may end sooner)")

    def report(epoch: int, logs: dict[str, float]) -> None:
        update_progress_artifact(progress, progress=100.0 * epoch / config.max_epochs)

    trained = train_model(inputs, model_dir, config, on_epoch=report, recipe=recipe, timeout_seconds=timeout_seconds)
    update_progress_artifact(progress, progress=100.0)
    return trained


@task(cache_policy=NO_CACHE, name="train", task_run_name=_train_run_name)
def train_task(name: str, inputs: TrainingInputs, model_dir: Path, config: TrainingSettings,
               timeout_seconds: float) -> TrainedModel:
    """`name` says which model this is (the network's, or one station's) in the UI."""
    return train_with_progress(name, inputs, model_dir, config, timeout_seconds)
