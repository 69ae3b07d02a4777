"""Model states (state blobs) and the fast train/test passes, against Keras' own fit, evaluate and save_weights."""

from __future__ import annotations

import numpy as np
import pytest

from cerebro_spark.errors import CheckpointError
from cerebro_spark.store import layout
from cerebro_spark.training import keras_io
from cerebro_spark.training.steps import StepFunctions

pytestmark = pytest.mark.keras


def mlp(seed=0, width=8, inputs=6, lr=1e-2):
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((inputs,)),
            keras.layers.Dense(width, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="binary_crossentropy", metrics=["accuracy"])
    model.optimizer.build(model.trainable_variables)
    return model


def rows(n=200, inputs=6, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, inputs)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.float32)[:, None]


def weights_and_slots(model):
    return [np.asarray(v.numpy()) for v in keras_io.state_variables(model)]


def assert_same_state(a, b):
    left, right = weights_and_slots(a), weights_and_slots(b)
    assert len(left) == len(right)
    for x, y in zip(left, right, strict=True):
        np.testing.assert_array_equal(x, y)


def test_a_state_blob_carries_weights_and_optimizer_state_like_save_weights(tmp_path):
    x, y = rows()
    trained = mlp(seed=0, lr=3e-2)
    trained.fit(x, y, batch_size=32, epochs=2, verbose=0)
    other = mlp(seed=1, lr=1e-3)  # same structure, other weights and learning rate
    keras_io.set_state(other, keras_io.get_state(trained))
    assert_same_state(trained, other)
    assert float(other.optimizer.learning_rate.numpy()) == pytest.approx(3e-2)
    assert int(other.optimizer.iterations.numpy()) == int(trained.optimizer.iterations.numpy()) > 0
    # the same arrays as Keras' own weights file, in the same order
    path = str(tmp_path / "m.weights.h5")
    trained.save_weights(path)
    from_h5 = mlp(seed=2)
    from_h5.load_weights(path)
    assert_same_state(trained, from_h5)


def test_training_goes_on_identically_after_a_hand_off():
    x, y = rows()
    straight = mlp(seed=0)
    straight.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
    first, second = mlp(seed=0), mlp(seed=5)
    first.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    keras_io.set_state(second, keras_io.get_state(first))
    second.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    assert_same_state(straight, second)


def test_a_state_of_another_structure_or_a_damaged_one_is_refused():
    state = keras_io.get_state(mlp(width=8))
    with pytest.raises(CheckpointError, match=r"shape \(6, 8\).*shape \(6, 4\)"):
        keras_io.set_state(mlp(width=4), state)
    with pytest.raises(CheckpointError, match="another structure"):
        keras_io.set_state(mlp(width=8, inputs=6), keras_io.pack_arrays([np.zeros(3, np.float32)]))
    with pytest.raises(CheckpointError, match="Not a cerebro_spark model state"):
        keras_io.set_state(mlp(), b"\x89HDF\r\n\x1a\n" + state[8:])
    with pytest.raises(CheckpointError, match="damaged"):
        keras_io.set_state(mlp(), state[: len(state) // 2])


def test_pack_arrays_round_trips_dtypes_and_shapes_and_refuses_object_arrays():
    arrays = [np.arange(7, dtype=np.int64), np.ones((2, 3), np.float16), np.array(3.5, np.float32)]
    back = keras_io.unpack_arrays(keras_io.pack_arrays(arrays))
    assert [(a.dtype, a.shape) for a in back] == [(a.dtype, a.shape) for a in arrays]
    for a, b in zip(arrays, back, strict=True):
        np.testing.assert_array_equal(a, b)
    blob = keras_io.pack_arrays([np.zeros(2, np.float32)]).replace(b'"<f4"', b'"|O8"')
    with pytest.raises(CheckpointError, match="object arrays"):
        keras_io.unpack_arrays(blob)


def test_checkpoints_in_the_store_and_legacy_weights_files_load(store, tmp_path):
    x, y = rows()
    model = mlp(seed=0)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    key = layout.checkpoint_key("r1", "m0", 3)
    keras_io.save_checkpoint(store, key, model)
    restored = mlp(seed=9)
    keras_io.load_checkpoint(store, key, restored)
    assert_same_state(model, restored)
    # a run written by a release that saved Keras weights files resumes from them
    old_key = layout.checkpoint_key("r1", "m0", 4)
    path = str(tmp_path / "old.weights.h5")
    model.save_weights(path)
    store.upload(path, layout.legacy_checkpoint_key(old_key))
    legacy = mlp(seed=9)
    keras_io.load_checkpoint(store, old_key, legacy)
    assert_same_state(model, legacy)


def test_a_train_pass_equals_one_epoch_of_fit_weights_and_metrics():
    x, y = rows(203)  # a last batch shorter than the others
    w = np.random.default_rng(3).uniform(0.5, 2.0, len(x)).astype(np.float32)
    for sample_weight in (None, w):
        reference, fast = mlp(seed=0), mlp(seed=0)
        history = reference.fit(x, y, sample_weight=sample_weight, batch_size=32, shuffle=False, verbose=0)
        steps = StepFunctions(fast)
        metrics = steps.train_pass(x, y, sample_weight, 32)
        assert_same_state(reference, fast)
        assert metrics == pytest.approx({k: v[-1] for k, v in history.history.items()}, rel=1e-6)


def test_a_test_pass_equals_evaluate_and_may_come_before_any_training():
    x, y = rows(150)
    model = mlp(seed=0)
    steps = StepFunctions(model)  # its first step is an evaluation: the metrics are built there
    metrics = steps.test_pass(x, y, None, 64)
    expected = model.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)
    assert metrics == pytest.approx(expected, rel=1e-6)
    before = weights_and_slots(model)
    steps.train_pass(x, y, None, 16)
    assert any(not np.array_equal(a, b) for a, b in zip(before, weights_and_slots(model), strict=True))
    assert steps.test_pass(x, y, None, 64) == pytest.approx(
        model.evaluate(x, y, batch_size=64, verbose=0, return_dict=True), rel=1e-6
    )


def test_passes_trace_once_per_structure_whatever_the_batch_sizes():
    x, y = rows(203)
    steps = StepFunctions(mlp())
    counts = []
    for batch_size in (32, 50, 7):
        steps.train_pass(x, y, None, batch_size)
        steps.test_pass(x, y, None, batch_size)
        counts.append({k: f.experimental_get_tracing_count() for k, f in steps._functions.items()})
    assert len(steps._functions) == 2
    # the first pass traces (twice where it creates the metrics' variables); no other pass does
    assert counts[0] == counts[1] == counts[2] and max(counts[0].values()) <= 2


def test_multi_input_models_and_eager_models_train_like_fit():
    import keras

    def two_inputs(seed, eager=False):
        keras.utils.set_random_seed(seed)
        a, b = keras.Input((3,), name="a"), keras.Input((2,), name="b")
        out = keras.layers.Dense(1)(keras.layers.Concatenate()([keras.layers.Dense(4)(a), b]))
        model = keras.Model([a, b], out)
        model.compile(optimizer="sgd", loss="mse", metrics=["mae"], run_eagerly=eager)
        return model

    rng = np.random.default_rng(0)
    xa, xb = rng.standard_normal((90, 3)).astype(np.float32), rng.standard_normal((90, 2)).astype(np.float32)
    y = (xa.sum(1, keepdims=True) - xb[:, :1]).astype(np.float32)
    reference = two_inputs(0)
    history = reference.fit([xa, xb], y, batch_size=16, shuffle=False, verbose=0)
    for eager in (False, True):
        fast = two_inputs(0, eager=eager)
        metrics = StepFunctions(fast).train_pass([xa, xb], y, None, 16)
        for a, b in zip(reference.get_weights(), fast.get_weights(), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        assert metrics == pytest.approx({k: v[-1] for k, v in history.history.items()}, rel=1e-5)


def test_the_fit_and_evaluate_path_of_other_backends_gives_the_same_pass():
    x, y = rows(150)
    compiled, generic = StepFunctions(mlp(seed=0)), StepFunctions(mlp(seed=0))
    generic._tensorflow = False  # what a JAX or PyTorch Keras backend runs
    assert generic.train_pass(x, y, None, 32) == pytest.approx(compiled.train_pass(x, y, None, 32), rel=1e-6)
    assert_same_state(compiled.model, generic.model)
    assert generic.test_pass(x, y, None, 64) == pytest.approx(compiled.test_pass(x, y, None, 64), rel=1e-6)
