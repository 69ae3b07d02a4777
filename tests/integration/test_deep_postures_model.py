"""examples/deep_postures: the CNN-BiLSTM's shape, its L2 penalty and its output layer against its loss."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.keras

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from deep_postures.model import build_model, estimator_gen_fn  # noqa: E402

SEQ = 6


def batch(seed: int = 0, n: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1, (n, SEQ, 300)).astype(np.float32), rng.integers(0, 2, (n, SEQ))


def test_the_architecture_is_the_papers_scaled_by_a():
    import keras

    model = build_model(SEQ, 0.25, 1e-3)
    assert tuple(model.input.shape) == (None, SEQ, 300) and tuple(model.output.shape) == (None, SEQ, 2)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv3D)]
    assert [c.filters for c in convs] == [8, 16, 32, 64, 64]  # 32a, 64a, 128a, 256a, 256a with a = 1/4
    assert [c.kernel_size for c in convs] == [(1, 5, 3)] + [(1, 5, 1)] * 4
    assert all(c.strides == (1, 2, 1) and c.padding == "same" for c in convs)
    assert all(c.activation is keras.activations.relu for c in convs)
    assert model.get_layer("window_code").units == 64  # 256a
    bilstm = model.get_layer("bilstm")
    assert bilstm.forward_layer.units == 128 and bilstm.backward_layer.units == 128
    assert build_model(42, 2, 1e-3).get_layer("conv5").filters == 512


def test_the_cnn_sees_each_window_on_its_own():
    """Changing one window changes that window's code only: the CNN is applied per window."""
    import keras

    model = build_model(SEQ, 0.125, 0.0)
    codes = keras.Model(model.input, model.get_layer("window_code").output)
    x, _ = batch()
    changed = x.copy()
    changed[:, 2] += 1.0
    diff = np.abs(codes.predict(changed, verbose=0) - codes.predict(x, verbose=0)).max(axis=(0, 2))
    assert diff[2] > 1e-3 and np.all(np.delete(diff, 2) == 0.0)


def test_l2_adds_its_penalty_to_the_loss():
    import keras

    regularized, plain = build_model(SEQ, 0.125, 0.01), build_model(SEQ, 0.125, 0.0)
    plain.set_weights(regularized.get_weights())
    kernels = [w for w in regularized.weights if "kernel" in w.path and "recurrent" not in w.path]
    assert len(kernels) == 9  # 5 convolutions, the dense layer, the LSTM both ways, the output layer
    penalty = 0.01 * sum(float(np.sum(np.square(w.numpy()))) for w in kernels)
    assert float(sum(regularized.losses)) == pytest.approx(penalty, rel=1e-4)
    assert penalty > 0.01
    assert plain.losses == []
    x, y = batch()
    for model in (regularized, plain):
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    with_penalty, without = regularized.evaluate(x, y, verbose=0), plain.evaluate(x, y, verbose=0)
    assert with_penalty - without == pytest.approx(penalty, rel=1e-3)


def test_the_output_is_a_softmax_that_the_estimators_loss_expects():
    import keras

    est = estimator_gen_fn({"seq_len": SEQ, "amp": 0.125, "l2": 0.0, "lr": 1e-3, "batch_size": 4})
    model = est.getModel()
    assert model.get_layer("posture").activation is keras.activations.softmax
    x, y = batch(1)
    probabilities = model.predict(x, verbose=0)
    assert probabilities.shape == (4, SEQ, 2)
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, rtol=1e-5)
    loss = keras.losses.get(est.getOrDefault(est.loss))
    expected = -np.log(np.take_along_axis(probabilities, y[..., None], axis=-1)).mean()
    assert float(np.mean(loss(y, probabilities))) == pytest.approx(expected, rel=1e-4)  # not logits
    assert est.getOrDefault(est.metrics)[0].name == "accuracy"
    assert est.getBatchSize() == 4
    assert float(est.getOrDefault(est.optimizer).learning_rate) == pytest.approx(1e-3)
