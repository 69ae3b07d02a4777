"""Keras models in and out of bytes, files and the Store: the one module that does it.

Three things travel, each in its own format:

- **a model** (architecture, compile settings, initial state) as a Keras 3 ``.keras`` file, loaded
  with Keras' safe mode on (a file carrying Python code, such as a ``Lambda`` layer, is refused);
- **a model's state** (its weights and its optimizer's variables: slots, iteration count, learning
  rate) as a *state blob*: a short JSON header naming each array's dtype and shape, then the raw
  array bytes. Workers hand it to the driver in memory after every training unit, the driver hands
  it to the next worker, and the Store keeps it as the durable checkpoint. It holds exactly what
  ``model.save_weights`` would (``model.weights`` then ``model.optimizer.variables``), in the same
  order, and nothing executable: loading it never unpickles. Checkpoints written as ``.weights.h5``
  by earlier releases still load (:func:`load_checkpoint`);
- **custom objects** (the user's layers, losses, functions) as a cloudpickle of a ``dict``, so that
  those defined in a notebook or ``__main__`` travel by value. Unpickling runs code: it happens here
  only, in :func:`load_custom_objects`.

Keras and TensorFlow are imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from cerebro_spark.errors import CheckpointError
from cerebro_spark.store import layout
from cerebro_spark.store.base import Store

if TYPE_CHECKING:
    import keras

#: The first bytes of a state blob (the version of the format is its last digit).
STATE_MAGIC = b"CEREBRO-STATE-1\n"
_HEADER_LEN_BYTES = 8
_ALIGN = 64  # array bytes start at multiples of this, so arrays can be read without a copy


# ---- custom objects ----------------------------------------------------------------------------------


def dump_custom_objects(custom_objects: Mapping[str, Any] | None) -> bytes:
    """``custom_objects`` pickled with cloudpickle (functions from ``__main__`` by value); ``b""`` for none."""
    if not custom_objects:
        return b""
    import cloudpickle

    return cloudpickle.dumps(dict(custom_objects))  # type: ignore[no-any-return]


def load_custom_objects(data: bytes | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The custom objects pickled by :func:`dump_custom_objects` (a mapping is taken as it is)."""
    if not data:
        return None
    if isinstance(data, Mapping):
        return dict(data)
    return pickle.loads(data)  # type: ignore[no-any-return]  # noqa: S301 (bytes this package wrote)


# ---- built-in Keras objects (optimizers, losses, metrics, schedules) ------------------------------------


def object_config(value: Any) -> Any:
    """The config of a Keras object (an optimizer, a loss...) as Keras serializes it."""
    import keras

    return keras.saving.serialize_keras_object(value)


def object_from_config(config: Any, custom_objects: bytes | Mapping[str, Any] | None = None) -> Any:
    """The Keras object of a config written by :func:`object_config`."""
    import keras

    return keras.saving.deserialize_keras_object(config, custom_objects=load_custom_objects(custom_objects))


# ---- whole models (.keras) ---------------------------------------------------------------------------


def model_to_bytes(model: keras.Model) -> bytes:
    """The ``.keras`` file of ``model`` as bytes."""
    with tempfile.TemporaryDirectory(prefix="cerebro-model-") as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        with open(path, "rb") as f:
            return f.read()


def model_from_bytes(data: bytes, custom_objects: bytes | Mapping[str, Any] | None = None) -> keras.Model:
    """Load a model from the bytes of a ``.keras`` file (Keras' safe mode stays on)."""
    with tempfile.TemporaryDirectory(prefix="cerebro-model-") as tmp:
        path = os.path.join(tmp, "model.keras")
        with open(path, "wb") as f:
            f.write(data)
        return load_model_file(path, custom_objects)


def load_model_file(
    path: str, custom_objects: bytes | Mapping[str, Any] | None = None, *, build_optimizer: bool = False
) -> keras.Model:
    """Load a ``.keras`` file (safe mode on); with ``build_optimizer``, a compiled model's optimizer is
    built, so that a state (:func:`set_state`) can be assigned at once."""
    import keras

    model = keras.models.load_model(path, custom_objects=load_custom_objects(custom_objects), compile=True)
    if build_optimizer and getattr(model, "optimizer", None) is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    return model


def save_model(store: Store, key: str, model: keras.Model) -> None:
    """Write ``model`` as a ``.keras`` file to ``key`` (atomically, as every Store write)."""
    store.write_bytes(key, model_to_bytes(model))


def load_model(
    store: Store, key: str, custom_objects: bytes | Mapping[str, Any] | None = None
) -> keras.Model:
    """The model of the ``.keras`` file at ``key``, its optimizer built (ready for :func:`set_state`)."""
    with store.local_copy(key) as path:
        return load_model_file(path, custom_objects, build_optimizer=True)


# ---- state: weights and optimizer variables ----------------------------------------------------------


def state_variables(model: keras.Model) -> list[Any]:
    """The variables a state holds, in order: the model's weights, then its optimizer's variables."""
    optimizer = getattr(model, "optimizer", None)
    return [*model.weights, *(optimizer.variables if optimizer is not None else [])]


def get_state(model: keras.Model) -> bytes:
    """``model``'s weights and optimizer state as a state blob (see the module's docstring)."""
    return pack_arrays([np.asarray(v.numpy()) for v in state_variables(model)])


def set_state(model: keras.Model, state: bytes | memoryview) -> None:
    """Assign a state blob from :func:`get_state` to ``model`` (of the same structure).

    Raises CheckpointError, naming the first variable that differs, when the blob does not fit.
    """
    arrays = unpack_arrays(state)
    variables = state_variables(model)
    if len(arrays) != len(variables):
        raise CheckpointError(
            f"A model state holds {len(arrays)} arrays but the model {model.name!r} has {len(variables)} "
            "weights and optimizer variables: the state belongs to a model of another structure."
        )
    for variable, array in zip(variables, arrays, strict=True):
        if tuple(variable.shape) != array.shape:
            raise CheckpointError(
                f"Cannot restore variable {variable.path!r} of model {model.name!r}: the state holds shape "
                f"{array.shape}, the variable has shape {tuple(variable.shape)}."
            )
        variable.assign(array)


def pack_arrays(arrays: list[np.ndarray]) -> bytes:
    """Arrays as one blob: magic, header length, JSON header (dtype, shape, offset each), aligned bytes.

    The arrays' bytes are copied once, into the blob (no intermediate copies: a state can be large).
    """
    arrays = [
        a if a.flags.c_contiguous else a.copy(order="C") for a in arrays
    ]  # (ascontiguousarray makes 0-d 1-d)
    entries: list[dict[str, Any]] = []
    offset = 0
    for array in arrays:
        offset = -(-offset // _ALIGN) * _ALIGN
        entries.append({"dtype": array.dtype.str, "shape": list(array.shape), "offset": offset})
        offset += array.nbytes
    header = json.dumps({"arrays": entries}).encode()
    prefix = STATE_MAGIC + len(header).to_bytes(_HEADER_LEN_BYTES, "big") + header
    start = -(-len(prefix) // _ALIGN) * _ALIGN
    pieces: list[bytes | memoryview] = [prefix, bytes(start - len(prefix))]
    position = 0
    for entry, array in zip(entries, arrays, strict=True):
        pieces.append(bytes(entry["offset"] - position))  # alignment padding
        pieces.append(array.reshape(-1).view(np.uint8).data if array.size else b"")
        position = entry["offset"] + array.nbytes
    return b"".join(pieces)


def unpack_arrays(blob: bytes | memoryview) -> list[np.ndarray]:
    """The arrays of a blob from :func:`pack_arrays` (read-only views of ``blob``, no copy)."""
    view = memoryview(blob)
    if bytes(view[: len(STATE_MAGIC)]) != STATE_MAGIC:
        raise CheckpointError(
            f"Not a cerebro_spark model state: it starts with {bytes(view[:16])!r}, expected {STATE_MAGIC!r}."
        )
    size = int.from_bytes(view[len(STATE_MAGIC) : len(STATE_MAGIC) + _HEADER_LEN_BYTES], "big")
    begin = len(STATE_MAGIC) + _HEADER_LEN_BYTES
    try:
        header = json.loads(bytes(view[begin : begin + size]))
        start = -(-(begin + size) // _ALIGN) * _ALIGN
        arrays = []
        for entry in header["arrays"]:
            dtype, shape = np.dtype(entry["dtype"]), tuple(int(d) for d in entry["shape"])
            if dtype.hasobject:
                raise ValueError(f"object arrays are refused (dtype {dtype})")
            count = int(np.prod(shape, dtype=np.int64))
            first = start + int(entry["offset"])
            if first + count * dtype.itemsize > len(view):
                raise ValueError("an array runs past the end of the blob")
            arrays.append(np.frombuffer(view, dtype=dtype, count=count, offset=first).reshape(shape))
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"A model state is damaged: {exc}") from exc
    return arrays


# ---- checkpoints in the Store ------------------------------------------------------------------------


def save_checkpoint(store: Store, key: str, model: keras.Model) -> None:
    """Write ``model``'s state to ``key`` as a state blob."""
    store.write_bytes(key, get_state(model))


def load_checkpoint(store: Store, key: str, model: keras.Model) -> None:
    """Restore ``model``'s state from the checkpoint at ``key``.

    A state blob is assigned directly; a ``.weights.h5`` file (written by Keras' ``save_weights``, as
    releases before the state blob did) is loaded with ``load_weights``.
    """
    try:
        _load_checkpoint_file(store, key, model)
    except FileNotFoundError:
        legacy = layout.legacy_checkpoint_key(key)
        if not store.exists(legacy):
            raise
        _load_checkpoint_file(store, legacy, model)


def _load_checkpoint_file(store: Store, key: str, model: keras.Model) -> None:
    with store.local_copy(key) as path:
        with open(path, "rb") as f:
            magic = f.read(len(STATE_MAGIC))
            if magic == STATE_MAGIC:
                set_state(model, magic + f.read())
                return
        model.load_weights(path)
