"""What a worker needs to know about one model: a plain, picklable value (no Keras import here).

The model itself (architecture, compiled loss/metrics, optimizer) travels as a ``.keras`` file in
the Store, written once on the driver; its weights and optimizer state travel as state blobs (see
:mod:`cerebro_spark.training.keras_io`): in memory from unit to unit, and as versioned checkpoints in
the Store (:mod:`cerebro_spark.store.layout`). Version ``v`` is the state after ``v`` training units
(sub-epochs); version 0 is the initial state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cerebro_spark.store import layout


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One model of a run, as workers see it.

    Parameters
    ----------
    run_id, model_id : str
        Where the model lives in the Store (``runs/<run_id>/models/<model_id>/``).
    batch_size : int
        Rows per training step.
    eval_batch_size : int
        Rows per evaluation step (evaluation keeps no gradients: larger is faster).
    custom_objects : bytes
        A pickled ``dict`` of custom Keras objects (layers, losses...) needed to load the model,
        or ``b""`` for none. Pickled with cloudpickle on the driver so functions from ``__main__`` travel.
    params : dict
        The configuration (hyper-parameters) that produced the model, for records and logs.
    structure_key : str
        Equal for models that differ only in their state (weights, optimizer slots, a float learning
        rate): a worker then keeps one built, traced Keras model for all of them and swaps the state
        in, instead of tracing every configuration of a learning-rate grid. ``""``: share with none.
    """

    run_id: str
    model_id: str
    batch_size: int
    eval_batch_size: int = 1024
    custom_objects: bytes = b""
    params: dict[str, Any] = field(default_factory=dict)
    structure_key: str = ""

    @property
    def initial_key(self) -> str:
        """Store key of the ``.keras`` file: architecture, compile settings and initial state."""
        return layout.initial_model_key(self.run_id, self.model_id)

    def checkpoint_key(self, version: int) -> str:
        """Store key of the weights and optimizer state after ``version`` training units."""
        return layout.checkpoint_key(self.run_id, self.model_id, version)

    @property
    def cache_key(self) -> str:
        """Identifies the built Keras model a worker can use for this model (see ``structure_key``):
        models of one structure share one, across runs too; a model without a structure key has its own."""
        return self.structure_key or f"model:{self.run_id}/{self.model_id}"

    def state_id(self, version: int) -> tuple[str, str, int]:
        """Which state a built model holds: this model's ``version``, in this run."""
        return (self.run_id, self.model_id, version)
