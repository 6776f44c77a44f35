"""The training loss, the horizon weights and the ensemble model, on tiny arrays."""

from dataclasses import replace

import numpy as np
import pytest

from tasks.core.errors import TrainingTimeout
from tasks.core.home import MODEL_FILE, TRAINING_SUMMARY
from tasks.core.settings import TrainingSettings
from tasks.model.train import (
    build_model,
    horizon_weights,
    load_model,
    masked_mse,
    stopping_callbacks,
    TRAINING_TAG,
    training_batches,
    training_deadline,
    training_tags,
)


def small(**changes) -> TrainingSettings:
    """A one-layer, 8-unit model's settings, without dropout, weight averaging or horizon weights unless changed."""
    base = TrainingSettings(max_epochs=8, patience=2, batch_size=32, lstm_layers=1, lstm_units=8,
                            horizon_weight_power=0.0, ensemble_size=1, learning_rate=1e-3, dropout=0.0,
                            weight_averaging=0.0, seed=0)
    return replace(base, **changes)


def test_masked_loss_ignores_missing_targets():
    truth = np.array([[1.0, np.nan], [np.nan, 3.0]], dtype="float32")
    prediction = np.array([[2.0, 100.0], [-50.0, 5.0]], dtype="float32")
    assert float(masked_mse(np.ones(2))(truth, prediction)) == pytest.approx((1.0 + 4.0) / 2)


def test_masked_loss_weighs_each_horizon_and_averages_the_members():
    truth = np.array([[0.0, 0.0]], dtype="float32")
    weights = np.array([3.0, 1.0])
    one_member = np.array([[1.0, 2.0]], dtype="float32")
    assert float(masked_mse(weights)(truth, one_member)) == pytest.approx((3 * 1 + 1 * 4) / 2)
    two_members = np.array([[1.0, 2.0, 3.0, 0.0]], dtype="float32")  # member 1: (1, 2), member 2: (3, 0)
    assert float(masked_mse(weights, members=2)(truth, two_members)) == pytest.approx(((3 + 4) + (27 + 0)) / 4)


def test_horizon_weights_favour_near_hours_and_average_one():
    weights = horizon_weights(24, 1.0)
    assert weights.mean() == pytest.approx(1.0)
    assert np.all(np.diff(weights) < 0) and weights[0] / weights[-1] == pytest.approx(24.0)
    np.testing.assert_allclose(horizon_weights(24, 0.0), np.ones(24))


def test_ensemble_forecasts_the_mean_of_its_members_and_saves_safely(tmp_path):
    training, forecasting = build_model(5, 3, 4, small(learning_rate=1e-3, horizon_weight_power=1.0,
                                                       ensemble_size=2))
    inputs = np.random.default_rng(0).normal(size=(6, 5, 3)).astype("float32")
    members = training.predict(inputs, verbose=0)
    assert members.shape == (6, 8)
    np.testing.assert_allclose(forecasting.predict(inputs, verbose=0), members.reshape(6, 2, 4).mean(axis=1), rtol=1e-5)
    forecasting.save(tmp_path / "model.keras")
    loaded = load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(loaded.predict(inputs, verbose=0), forecasting.predict(inputs, verbose=0), rtol=1e-5)


def test_with_weight_averaging_the_averaged_weights_are_validated_and_kept():
    """Early stopping scores and restores the moving average of the weights, not the last trained ones: with a
    slow average (momentum 0.99 over about 100 steps) those lag far behind and validate clearly worse."""
    import keras

    rng = np.random.default_rng(1)
    inputs = rng.normal(size=(512, 5, 3)).astype("float32")
    targets = (inputs[:, -1, :2] + 0.3 * rng.normal(size=(512, 2))).astype("float32")
    best = {}
    for weight_averaging in (0.0, 0.99):
        keras.utils.set_random_seed(0)
        training, _ = build_model(5, 3, 2, small(learning_rate=0.05, weight_averaging=weight_averaging))
        history = training.fit(inputs[:384], targets[:384], validation_data=(inputs[384:], targets[384:]), epochs=8,
                               batch_size=32, verbose=0, callbacks=stopping_callbacks(2, weight_averaging))
        best[weight_averaging] = min(history.history["val_loss"])
        kept = training.evaluate(inputs[384:], targets[384:], batch_size=32, verbose=0)
        assert kept == pytest.approx(best[weight_averaging], rel=1e-4)  # the model ends on the best validated weights
    assert best[0.99] > 2 * best[0.0]


def test_the_weights_keras_draws_do_not_depend_on_other_threads_drawing_from_pythons_random():
    """An unseeded Keras layer draws its seed from Python's global `random`, which a Dask worker's background threads
    draw from while a task runs. Seeded by LayerSeeds, the initial weights are those of a quiet process."""
    import random
    import threading

    import keras

    def initial_weights() -> list[np.ndarray]:
        keras.utils.set_random_seed(7)
        training, _ = build_model(5, 3, 4, small(learning_rate=1e-3, dropout=0.2, ensemble_size=2, seed=7))
        return training.get_weights()

    quiet = initial_weights()
    stop = threading.Event()
    drawn = []
    noisy = threading.Thread(target=lambda: [drawn.append(random.random()) for _ in iter(stop.is_set, True)])
    noisy.start()
    try:
        while len(drawn) < 1000:  # the other thread is drawing
            pass
        busy = initial_weights()
    finally:
        stop.set()
        noisy.join()
    assert len(drawn) > 1000
    for expected, got in zip(quiet, busy, strict=True):
        np.testing.assert_array_equal(got, expected)


def batch_rows(dataset) -> list[list[int]]:
    """The sample numbers of each batch (the inputs below hold their own sample number)."""
    return [inputs[:, 0, 0].numpy().astype(int).tolist() for inputs, _ in dataset]


@pytest.mark.parametrize("samples", [20, 18])  # a last, partial batch, and none
def test_training_batches_cover_every_sample_once_a_pass_in_a_seeded_order(samples):
    import keras

    inputs = np.arange(samples, dtype="float32").reshape(samples, 1, 1)
    targets = inputs[:, 0, :] * 10
    keras.utils.set_random_seed(3)
    shuffled = batch_rows(training_batches(inputs, targets, 6, shuffle=True))
    assert [len(batch) for batch in shuffled] == [6, 6, 6] + ([samples - 18] if samples > 18 else [])
    assert sorted(sum(shuffled, [])) == list(range(samples)) and sum(shuffled, []) != list(range(samples))
    keras.utils.set_random_seed(3)
    assert batch_rows(training_batches(inputs, targets, 6, shuffle=True)) == shuffled
    in_order = batch_rows(training_batches(inputs, targets, 6, shuffle=False))
    assert sum(in_order, []) == list(range(samples))
    for inputs_batch, targets_batch in training_batches(inputs, targets, 6, shuffle=True):
        np.testing.assert_array_equal(targets_batch.numpy(), inputs_batch.numpy()[:, 0, :] * 10)  # rows stay paired


def test_training_batches_train_the_weights_fit_trains_on_arrays():
    """What keeps every trained model the same since fit stopped being given arrays (Keras 3.15's pipeline): plain
    SGD, whose weights depend on every batch and on their order, ends on the same weights either way."""
    import keras

    inputs = np.random.default_rng(0).normal(size=(50, 1, 3)).astype("float32")
    targets = inputs[:, 0, :] @ np.array([[1.0], [2.0], [-1.0]], dtype="float32")

    def trained(**fit_arguments) -> list[np.ndarray]:
        keras.utils.set_random_seed(11)
        model = keras.Sequential([keras.Input((1, 3)), keras.layers.Flatten(),
                                  keras.layers.Dense(1, kernel_initializer="zeros")])
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        model.fit(**fit_arguments, epochs=2, verbose=0)
        return model.get_weights()

    final = {}
    for shuffle in (True, False):
        final[shuffle] = trained(x=inputs, y=targets, batch_size=8, shuffle=shuffle)
        from_batches = trained(x=training_batches(inputs, targets, 8, shuffle=shuffle), shuffle=False)
        for expected, got in zip(final[shuffle], from_batches, strict=True):
            np.testing.assert_array_equal(got, expected)
    assert not np.array_equal(final[True][0], final[False][0])  # the order of the batches shows in the weights


def test_fit_on_training_batches_runs_every_batch_of_every_epoch_without_a_ran_out_of_data_warning():
    """Keras reads the number of batches from the dataset: no warning in a run's log, and no batch skipped."""
    import warnings

    import keras

    inputs = np.random.default_rng(0).normal(size=(50, 2, 1)).astype("float32")
    targets = inputs[:, -1, :].copy()
    model = keras.Sequential([keras.Input((2, 1)), keras.layers.Flatten(), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", steps_per_execution=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(training_batches(inputs, targets, 8, shuffle=True), epochs=2, shuffle=False, verbose=0)
    assert not [warning for warning in caught if "ran out of data" in str(warning.message)]
    assert len(training_batches(inputs, targets, 8, shuffle=True)) == 7  # 6 batches of 8 and one of 2
    assert int(model.optimizer.iterations) == 14  # each epoch stepped through all 7, in calls of 4 steps


@pytest.mark.parametrize("seconds", [0.0, 600.0])
def test_a_training_deadline_ends_the_fit_only_once_it_has_passed(seconds, tmp_path):
    import keras

    inputs = np.random.default_rng(0).normal(size=(40, 2, 1)).astype("float32")
    model = keras.Sequential([keras.Input((2, 1)), keras.layers.Flatten(), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    deadline = training_deadline(tmp_path / "model", seconds)
    if seconds:
        model.fit(inputs, inputs[:, -1, :], batch_size=8, epochs=3, verbose=0, callbacks=[deadline])
        assert int(model.optimizer.iterations) == 15
    else:
        with pytest.raises(TrainingTimeout, match=r"model ran past its timeout of 0 s \(PM25_TRAINING_TIMEOUT_SECONDS\)"):
            model.fit(inputs, inputs[:, -1, :], batch_size=8, epochs=3, verbose=0, callbacks=[deadline])
        assert int(model.optimizer.iterations) == 1  # it stopped after the first batch


def test_only_trainings_that_will_train_carry_the_tag_whose_limit_queues_them(tmp_path):
    trained, untrained = tmp_path / "trained", tmp_path / "untrained"
    for folder in (trained, untrained):
        folder.mkdir()
    (trained / MODEL_FILE).write_bytes(b"model")
    (trained / TRAINING_SUMMARY).write_text("{}")
    (untrained / MODEL_FILE).write_bytes(b"a model whose training did not finish: no summary")
    assert training_tags([trained]) == []
    assert training_tags([trained, untrained]) == [TRAINING_TAG]
