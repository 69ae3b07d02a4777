"""Training and evaluation passes over in-memory arrays, without ``fit()``'s set-up cost per call.

``keras.Model.fit`` and ``evaluate`` build a data adapter, an epoch iterator and a callback list on every
call: about 30-45 ms on a small model, paid by MOP on every unit (a sub-epoch is one call). A pass
here runs the model's own ``train_step`` / ``test_step`` (its compiled loss, metrics and optimizer: the
computation ``fit`` runs) batch by batch. On TensorFlow each step is wrapped once per model in a
``tf.function`` whose batch dimension is open, so a structure is traced once per worker, whatever the
batch sizes; ``run_eagerly`` and ``jit_compile`` are honoured as ``fit`` honours them. On other Keras
backends a pass is one ``fit`` (or ``evaluate``) call.

The metrics of a pass are what ``fit`` reports for one epoch: Keras' running means, reset at the start
of the pass. Batches are taken in the arrays' order (shuffle them first).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Arrays = np.ndarray | list[np.ndarray] | tuple[np.ndarray, ...]


class StepFunctions:
    """A model with its compiled train and test steps (kept with the model on a worker).

    Parameters
    ----------
    model : keras.Model
        A compiled model.
    """

    def __init__(self, model: Any) -> None:
        import keras

        self.model = model
        self._tensorflow = keras.backend.backend() == "tensorflow"
        self._functions: dict[tuple[str, str], Callable[[Any], Any]] = {}

    def train_pass(
        self, x: Arrays, y: Arrays, sample_weight: np.ndarray | None, batch_size: int
    ) -> dict[str, float]:
        """One pass over the rows, ``batch_size`` rows per step; returns the pass's metrics."""
        return self._run("train", x, y, sample_weight, batch_size)

    def test_pass(
        self, x: Arrays, y: Arrays, sample_weight: np.ndarray | None, batch_size: int
    ) -> dict[str, float]:
        """Evaluate on the rows without updating the model; returns the metrics (Keras' names)."""
        return self._run("test", x, y, sample_weight, batch_size)

    def _run(
        self, kind: str, x: Arrays, y: Arrays, sample_weight: np.ndarray | None, batch_size: int
    ) -> dict[str, float]:
        if not self._tensorflow:
            return self._keras_call(kind, x, y, sample_weight, batch_size)
        x, y = _as_nest(x), _as_nest(y)
        rows = len(_first(x))
        self.model.reset_metrics()
        logs: Any = {}
        for start in range(0, rows, batch_size):
            stop = min(start + batch_size, rows)
            batch: tuple[Any, ...] = (_slice(x, start, stop), _slice(y, start, stop))
            if sample_weight is not None:
                batch = (*batch, sample_weight[start:stop])
            logs = self._step(kind, batch)
        return {name: float(np.asarray(value)) for name, value in dict(logs).items()}

    def _keras_call(
        self, kind: str, x: Arrays, y: Arrays, sample_weight: np.ndarray | None, batch_size: int
    ) -> dict[str, float]:
        if kind == "train":
            history = self.model.fit(
                x, y, sample_weight=sample_weight, batch_size=batch_size, epochs=1, shuffle=False, verbose=0
            )
            return {name: float(values[-1]) for name, values in history.history.items()}
        result = self.model.evaluate(
            x, y, sample_weight=sample_weight, batch_size=batch_size, verbose=0, return_dict=True
        )
        return {name: float(value) for name, value in result.items()}

    def _step(self, kind: str, batch: tuple[Any, ...]) -> Any:
        if self.model.run_eagerly:
            return (self.model.train_step if kind == "train" else self.model.test_step)(batch)
        key = (kind, _signature_key(batch))
        function = self._functions.get(key)
        if function is None:
            function = self._functions[key] = self._trace(kind, batch)
        return function(batch)

    def _trace(self, kind: str, batch: tuple[Any, ...]) -> Callable[[Any], Any]:
        import tensorflow as tf

        step = self.model.train_step if kind == "train" else self.model.test_step
        spec = tf.nest.map_structure(
            lambda a: tf.TensorSpec((None, *a.shape[1:]), tf.as_dtype(a.dtype)), batch
        )

        @tf.autograph.experimental.do_not_convert  # type: ignore[untyped-decorator]
        def one_step(data: Any) -> Any:
            return step(data)

        return tf.function(one_step, input_signature=[spec], jit_compile=self.model.jit_compile)  # type: ignore[no-any-return]


def _as_nest(arrays: Arrays) -> Any:
    """One array as it is; several as a tuple (as Keras' data adapters hand them to a step)."""
    return tuple(arrays) if isinstance(arrays, (list, tuple)) else arrays


def _first(arrays: Any) -> np.ndarray:
    return arrays[0] if isinstance(arrays, tuple) else arrays  # type: ignore[no-any-return]


def _slice(arrays: Any, start: int, stop: int) -> Any:
    if isinstance(arrays, tuple):
        return tuple(a[start:stop] for a in arrays)
    return arrays[start:stop]


def _signature_key(batch: tuple[Any, ...]) -> str:
    """Equal for batches that differ only in their number of rows."""

    def describe(value: Any) -> Any:
        if isinstance(value, tuple):
            return [describe(v) for v in value]
        return f"{value.dtype.str}{tuple(value.shape[1:])}"

    return repr(describe(batch))
