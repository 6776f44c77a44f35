"""Train: a seeded Keras LSTM that forecasts the next `horizon` hours at once, with early stopping.

The network predicts the change of PM2.5 (in standardised model space) from the last input hour; a
missing target hour is masked out of the loss, never filled.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks import storage
from tasks.windows import WindowSet, load_window_set

MODEL_FILE = "model.keras"
TRAINING_LOG = "training_log.csv"
TRAINING_SUMMARY = "training.json"
PREPROCESSING_FILE = "preprocessing.json"
WINDOWS_FILE = "windows.json"

log = logging.getLogger(__name__)

EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True)
class TrainingConfig:
    max_epochs: int
    patience: int
    batch_size: int
    lstm_units: int
    learning_rate: float
    dropout: float
    seed: int


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


def configure_tensorflow(seed: int) -> None:
    """Seed every generator and use all cores for each op (one op at a time keeps LSTM steps in order)."""
    import keras
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(os.cpu_count() or 1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # TensorFlow was already initialised in this process; its thread pools are fixed now.
    keras.utils.set_random_seed(seed)


def masked_mse(y_true, y_pred):
    """Mean squared error over the observed (non-NaN) target hours only."""
    from keras import ops

    observed = ops.logical_not(ops.isnan(y_true))
    error = ops.where(observed, y_pred - ops.where(observed, y_true, 0.0), 0.0)
    count = ops.maximum(ops.sum(ops.cast(observed, "float32")), 1.0)
    return ops.sum(ops.square(error)) / count


def build_model(lookback: int, n_features: int, horizon: int, units: int, learning_rate: float, dropout: float):
    """Two stacked LSTM layers (the seed recipe's shape) and a dense head with one output per horizon."""
    import keras

    inputs = keras.Input(shape=(lookback, n_features), name="history")
    hidden = keras.layers.LSTM(units, return_sequences=True, dropout=dropout, name="lstm_1")(inputs)
    hidden = keras.layers.LSTM(units, dropout=dropout, name="lstm_2")(hidden)
    hidden = keras.layers.Dropout(dropout, name="head_dropout")(hidden)
    outputs = keras.layers.Dense(horizon, name="change_per_horizon")(hidden)
    model = keras.Model(inputs, outputs, name="pm25_lstm")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=masked_mse)
    return model


def change_targets(windows: WindowSet) -> np.ndarray:
    """Each horizon's value minus the last input value (NaN where unobserved)."""
    return windows.targets - windows.last_value[:, None]


def fit_change_scale(train: WindowSet) -> np.ndarray:
    """Per-horizon spread of the change on the training span.

    The model learns change/scale, so each horizon weighs the same in the loss; otherwise the large
    day-ahead errors drown the hour-ahead ones.
    """
    return np.nanstd(change_targets(train), axis=0).astype("float32")


def _epoch_reporter(on_epoch: EpochCallback | None):
    import keras

    class EpochReporter(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = {key: float(value) for key, value in (logs or {}).items()}
            log.info("epoch %d: %s", epoch + 1, ", ".join(f"{k} {v:.4f}" for k, v in logs.items()))
            if on_epoch is not None:
                on_epoch(epoch + 1, logs)

    return EpochReporter()


def train_model(
    features_path: Path,
    params_path: Path,
    plan_path: Path,
    model_dir: Path,
    config: TrainingConfig,
    on_epoch: EpochCallback | None = None,
) -> TrainedModel:
    """Fit on the train span, stop early on the validation span (restoring the best weights), save `.keras`.

    The model folder also receives the preprocessing parameters and window plan, so it is self-contained.
    """
    summary_path = model_dir / TRAINING_SUMMARY
    if summary_path.exists() and (model_dir / MODEL_FILE).exists():
        log.info("training cache hit: %s holds a model for these data and settings", model_dir)
        return TrainedModel(model_dir=model_dir, model_path=model_dir / MODEL_FILE, cache_hit=True,
                            **storage.read_json(summary_path))
    configure_tensorflow(config.seed)
    import keras

    train = load_window_set(features_path, plan_path, "train")
    validation = load_window_set(features_path, plan_path, "validation")
    _, lookback, n_features = train.inputs.shape
    model = build_model(lookback, n_features, train.targets.shape[1], config.lstm_units, config.learning_rate,
                        config.dropout)
    model_dir.mkdir(parents=True, exist_ok=True)
    log_path = model_dir / TRAINING_LOG
    stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True)
    started = time.perf_counter()
    change_scale = fit_change_scale(train)
    history = model.fit(
        np.ascontiguousarray(train.inputs),
        change_targets(train) / change_scale,
        validation_data=(np.ascontiguousarray(validation.inputs), change_targets(validation) / change_scale),
        epochs=config.max_epochs,
        batch_size=config.batch_size,
        shuffle=True,
        verbose=0,
        callbacks=[stopper, keras.callbacks.CSVLogger(str(log_path)), _epoch_reporter(on_epoch)],
    )
    seconds = time.perf_counter() - started
    val_losses = history.history["val_loss"]
    best_epoch = int(np.argmin(val_losses)) + 1
    storage.write_atomically(model_dir / MODEL_FILE, lambda path: model.save(str(path)))
    storage.write_bytes(model_dir / PREPROCESSING_FILE, params_path.read_bytes())
    storage.write_bytes(model_dir / WINDOWS_FILE, plan_path.read_bytes())
    result = {"epochs_run": len(val_losses), "best_epoch": best_epoch, "best_val_loss": float(val_losses[best_epoch - 1]),
              "seconds": seconds, "change_scale": change_scale.tolist()}
    storage.write_json(summary_path, result)  # written last: its presence marks a complete model folder
    log.info("trained %d epochs in %.1f s; best epoch %d (val loss %.4f)", len(val_losses), seconds, best_epoch,
             result["best_val_loss"])
    return TrainedModel(model_dir=model_dir, model_path=model_dir / MODEL_FILE, **result)


def load_model(model_path: Path):
    """Load a saved model for inference, refusing unsafe (lambda) deserialisation."""
    import keras

    return keras.saving.load_model(model_path, compile=False, safe_mode=True)


def load_change_predictor(model_dir: Path) -> Callable[[np.ndarray], np.ndarray]:
    """Load the model once; the returned function maps input windows to the forecast change from the last
    input hour, per horizon, in standardised target space."""
    scale = np.asarray(storage.read_json(model_dir / TRAINING_SUMMARY)["change_scale"], dtype="float32")
    model = load_model(model_dir / MODEL_FILE)
    return lambda inputs: model.predict(np.ascontiguousarray(inputs), batch_size=1024, verbose=0) * scale


@task(cache_policy=NO_CACHE, name="train", task_run_name="train lstm {config.lstm_units}u seed {config.seed}")
def train_task(features_path: Path, params_path: Path, plan_path: Path, model_dir: Path, config: TrainingConfig) -> TrainedModel:
    from prefect.artifacts import create_progress_artifact, update_progress_artifact

    progress = create_progress_artifact(progress=0.0, key="training-progress",
                                        description=f"Training epochs (at most {config.max_epochs}; early stopping may end sooner)")

    def report(epoch: int, logs: dict[str, float]) -> None:
        update_progress_artifact(progress, progress=100.0 * epoch / config.max_epochs)

    trained = train_model(features_path, params_path, plan_path, model_dir, config, on_epoch=report)
    update_progress_artifact(progress, progress=100.0)
    return trained
