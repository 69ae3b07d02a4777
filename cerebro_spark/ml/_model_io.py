"""Keras models in and out of the Store, on the driver: the initial model of a run, trained ones.

Models are saved as Keras 3 ``.keras`` files (architecture, compile settings, optimizer state)
and checkpoints as ``.weights.h5`` (weights and optimizer state), never as legacy ``.h5``.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import os
import pickle
import re
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
    metrics, weighted = est.getOrDefault(est.metrics), est.getOrDefault(est.weighted_metrics)
    model.compile(
        optimizer=optimizer, loss=loss, metrics=list(metrics) if metrics else None,
        weighted_metrics=list(weighted) if weighted else None, loss_weights=est.getOrDefault(est.loss_weights),
    )  # fmt: skip
    model.optimizer.build(model.trainable_variables)  # so the saved file holds the full optimizer state
    return model


def pickled_custom_objects(est: KerasEstimator) -> bytes:
    custom = est.getOrDefault(est.custom_objects)
    if not custom:
        return b""
    import cloudpickle

    return cloudpickle.dumps(dict(custom))  # type: ignore[no-any-return]


def structure_key(model: keras.Model, custom_objects: bytes) -> str:
    """A digest equal for models that differ only in state: same architecture (layer names aside),
    same compile settings (a constant learning rate aside: it is an optimizer variable, saved in
    every checkpoint), same custom objects. Workers share one traced model among them."""
    config, compile_config = model.get_config(), model.get_compile_config()
    optimizer = compile_config.get("optimizer")
    if isinstance(optimizer, dict) and isinstance(optimizer.get("config"), dict):
        optimizer["config"]["name"] = "<optimizer>"
        if isinstance(optimizer["config"].get("learning_rate"), numbers.Real):
            optimizer["config"]["learning_rate"] = "<variable>"
    names = [model.name, *(layer.name for layer in model._flatten_layers(include_self=False))]
    names += _input_layer_names(config)
    canonical = {name: f"<layer {i}>" for i, name in enumerate(dict.fromkeys(names))}
    document = json.dumps([config, compile_config], sort_keys=True, default=repr)
    document = re.sub(r'"([^"]+)"', lambda m: f'"{canonical.get(m.group(1), m.group(1))}"', document)
    digest = hashlib.sha256(document.encode() + hashlib.sha256(custom_objects).digest())
    return digest.hexdigest()[:16]


def _input_layer_names(config: Any) -> list[str]:
    """Names of the InputLayers in a model config (Sequential models do not list them as layers)."""
    if isinstance(config, list):
        return [name for item in config for name in _input_layer_names(item)]
    if not isinstance(config, dict):
        return []
    found = []
    if config.get("class_name") == "InputLayer" and isinstance(config.get("config"), dict):
        found.append(str(config["config"].get("name")))
    return found + [name for value in config.values() for name in _input_layer_names(value)]


def write_initial_model(
    store: Store, run_id: str, model_id: str, est: KerasEstimator, params: dict[str, Any]
) -> ModelSpec:
    """Compile ``est``'s model and write it (``model.keras``) and its state (version 0) to the Store."""
    model = compiled_model(est)
    custom = pickled_custom_objects(est)
    spec = ModelSpec(
        run_id=run_id, model_id=model_id, batch_size=est.getBatchSize(),
        custom_objects=custom, params=dict(params), structure_key=structure_key(model, custom),
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
