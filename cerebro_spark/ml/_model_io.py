"""Keras models in and out of the Store, on the driver: the initial model of a run, trained ones.

Models are saved as Keras 3 ``.keras`` files (architecture, compile settings, optimizer state)
and checkpoints as ``.weights.h5`` (weights and optimizer state), never as legacy ``.h5``.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from typing import TYPE_CHECKING, Any

from cerebro_spark.store.base import Store
from cerebro_spark.training.model_spec import ModelSpec

if TYPE_CHECKING:
    import keras

    from cerebro_spark.ml.estimator import KerasEstimator


def compiled_model(est: KerasEstimator) -> keras.Model:
    """The estimator's model compiled with a fresh copy of its optimizer, ready to be saved."""
    import keras

    model = est.getModel()
    optimizer = est.getOrDefault(est.optimizer)
    loss = est.getOrDefault(est.loss)
    if model.compiled:
        optimizer = optimizer if optimizer is not None else model.optimizer
        loss = loss if loss is not None else model.loss
    optimizer = optimizer if optimizer is not None else "adam"
    if not isinstance(optimizer, str):  # never share optimizer state between runs or models
        optimizer = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    metrics = est.getOrDefault(est.metrics)
    model.compile(
        optimizer=optimizer, loss=loss, metrics=list(metrics) if metrics else None,
        loss_weights=est.getOrDefault(est.loss_weights),
    )  # fmt: skip
    model.optimizer.build(model.trainable_variables)  # so the saved file holds the full optimizer state
    return model


def pickled_custom_objects(est: KerasEstimator) -> bytes:
    custom = est.getOrDefault(est.custom_objects)
    if not custom:
        return b""
    import cloudpickle

    return cloudpickle.dumps(dict(custom))  # type: ignore[no-any-return]


def write_initial_model(
    store: Store, run_id: str, model_id: str, est: KerasEstimator, params: dict[str, Any]
) -> ModelSpec:
    """Compile ``est``'s model and write it (``model.keras``) and its state (version 0) to the Store."""
    model = compiled_model(est)
    spec = ModelSpec(
        run_id=run_id, model_id=model_id, batch_size=est.getBatchSize(),
        custom_objects=pickled_custom_objects(est), params=dict(params),
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="cerebro-model-") as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        store.upload(path, spec.initial_key)
        weights = os.path.join(tmp, "state.weights.h5")
        model.save_weights(weights)
        store.upload(weights, spec.checkpoint_key(0))
    return spec


def load_trained_model(store: Store, spec: ModelSpec, version: int) -> keras.Model:
    """The model of ``spec`` with the state of ``version`` (weights and optimizer)."""
    import keras

    custom = pickle.loads(spec.custom_objects) if spec.custom_objects else None  # noqa: S301 (our own bytes)
    with store.local_copy(spec.initial_key) as path:
        model = keras.models.load_model(path, custom_objects=custom)
    with store.local_copy(spec.checkpoint_key(version)) as path:
        model.load_weights(path)
    return model


def model_to_bytes(model: keras.Model) -> bytes:
    """The ``.keras`` file of ``model`` as bytes."""
    with tempfile.TemporaryDirectory(prefix="cerebro-model-") as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        with open(path, "rb") as f:
            return f.read()


def model_from_bytes(data: bytes, custom_objects: dict[str, Any] | None = None) -> keras.Model:
    """Load a model from the bytes of a ``.keras`` file (Keras' safe mode stays on)."""
    import keras

    with tempfile.TemporaryDirectory(prefix="cerebro-model-") as tmp:
        path = os.path.join(tmp, "model.keras")
        with open(path, "wb") as f:
            f.write(data)
        return keras.models.load_model(path, custom_objects=custom_objects)
