"""Inference on a partition: the rows are predicted in chunks of ``inference_batch_size``."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.keras


def test_a_short_last_chunk_is_padded_to_a_power_of_two_not_to_the_batch_size(monkeypatch):
    """A large inference_batch_size on a small partition must not predict (and allocate) mostly zeros."""
    import keras
    import numpy as np

    from cerebro_spark.ml._inference import _predict

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    seen, real = [], model.predict_on_batch
    monkeypatch.setattr(model, "predict_on_batch", lambda x: (seen.append(len(x)), real(x))[1])
    x = np.random.default_rng(0).standard_normal((70, 3)).astype(np.float32)
    (out,) = _predict(model, [x], batch_size=1 << 16)
    assert seen == [128] and out.shape == (70, 2)
    np.testing.assert_allclose(out, real(x), rtol=1e-5, atol=1e-6)  # the padding changes nothing
    seen.clear()
    _predict(model, [x], batch_size=32)
    assert seen == [32, 32, 8]  # full chunks, then 6 rows padded to 8
