"""The Keras side of a run on the driver: the estimator's model compiled, written as a run's initial
model, and trained models read back. Files and formats belong to :mod:`cerebro_spark.training.keras_io`.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import re
from typing import TYPE_CHECKING, Any

from cerebro_spark.store.base import Store
from cerebro_spark.training import keras_io
from cerebro_spark.training.model_spec import ModelSpec

if TYPE_CHECKING:
    import keras

    from cerebro_spark.ml.estimator import KerasEstimator


def compiled_model(est: KerasEstimator) -> keras.Model:
    """The estimator's model compiled with a fresh copy of its optimizer, ready to be saved."""
    import keras

    model = est.getModel()
    optimizer = est.getOrDefault(est.optimizer)
    loss = effective_loss(est)
    if model.compiled:
        optimizer = optimizer if optimizer is not None else model.optimizer
    optimizer = optimizer if optimizer is not None else "adam"
    if not isinstance(optimizer, str):  # never share optimizer state between runs or models
        optimizer = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    metrics, weighted = est.getOrDefault(est.metrics), est.getOrDefault(est.weighted_metrics)
    model.compile(
        optimizer=optimizer,
        loss=loss,
        metrics=list(metrics) if metrics else None,
        weighted_metrics=list(weighted) if weighted else None,
        loss_weights=est.getOrDefault(est.loss_weights),
    )
    model.optimizer.build(model.trainable_variables)  # so the saved file holds the full optimizer state
    return model


def effective_loss(est: KerasEstimator) -> Any:
    """The loss the estimator trains with: its ``loss`` param, else that of its model if compiled."""
    model, loss = est.getModel(), est.getOrDefault(est.loss)
    return loss if loss is not None or not getattr(model, "compiled", False) else model.loss


def pickled_custom_objects(est: KerasEstimator) -> bytes:
    return keras_io.dump_custom_objects(est.getOrDefault(est.custom_objects))


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
        run_id=run_id,
        model_id=model_id,
        batch_size=est.getBatchSize(),
        custom_objects=custom,
        params=dict(params),
        structure_key=structure_key(model, custom),
    )
    keras_io.save_model(store, spec.initial_key, model)
    keras_io.save_checkpoint(store, spec.checkpoint_key(0), model)
    return spec


def load_trained_model(store: Store, spec: ModelSpec, version: int) -> keras.Model:
    """The model of ``spec`` with the state of ``version`` (weights and optimizer)."""
    model = keras_io.load_model(store, spec.initial_key, spec.custom_objects)
    keras_io.load_checkpoint(store, spec.checkpoint_key(version), model)
    return model
