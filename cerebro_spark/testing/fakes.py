"""Fake worker tasks: the driver's loop runs on them without TensorFlow (a documented test double).

They follow the real tasks' contracts (:mod:`cerebro_spark.training.trainer`): a training unit
returns the next version, its state (``b"<model id>:<version>"``) and row-weighted metrics; an
evaluation returns metrics and rows. The loss of a model goes down with every unit it trains, faster for a larger ``params["rate"]``, so
tests can check which model is best. ``params["fail_at_epoch"]`` makes a model raise;
``params["fault"]`` makes its worker die or hang once (:mod:`cerebro_spark.testing.faults`);
``params["unit_s"]`` makes each training unit take that many seconds.
"""

from __future__ import annotations

import math
import threading
from typing import Any

from cerebro_spark.data.spec import ColumnSpec, DatasetSpec, PartitionSpec
from cerebro_spark.driver.loop import MopDriver
from cerebro_spark.driver.settings import RunSettings, TaskNames
from cerebro_spark.search.grid_search import GridSearchAlgorithm
from cerebro_spark.testing.faults import maybe_inject
from cerebro_spark.training.model_spec import ModelSpec


def setup(ctx: Any, *, seed: int | None = None, deterministic: bool = False) -> dict[str, Any]:
    return {"worker_id": ctx.worker_id}


def train(
    ctx: Any,
    *,
    store: Any,
    dataset: Any,
    model: Any,
    epoch: int,
    partition: int,
    from_version: int,
    seed: int,
    state: bytes | None = None,
) -> dict[str, Any]:
    if model.params.get("fail_at_epoch") == epoch:
        raise ValueError(f"model {model.model_id} diverged (fake)")
    maybe_inject(model.params, epoch, partition)
    if model.params.get("unit_s"):  # a unit that takes time, like real training (benchmarks of faults)
        threading.Event().wait(float(model.params["unit_s"]))
    _check_state(store, model, from_version, state)
    version = from_version + 1
    rate = float(model.params.get("rate", 1.0))
    rows = dataset.train[partition].rows
    loss = math.nan if model.params.get("nan_at_epoch") == epoch else 1.0 / (1.0 + rate * version)
    return {
        "metrics": {"loss": loss},
        "rows": rows,
        "version": version,
        "state": _state(model, version),
        "timings": {"load_s": 0.0, "read_s": 0.0, "train_s": 0.0, "save_s": 0.0},
    }


def evaluate(
    ctx: Any,
    *,
    store: Any,
    dataset: Any,
    model: Any,
    partition: int,
    version: int,
    state: bytes | None = None,
) -> dict[str, Any]:
    _check_state(store, model, version, state)
    rate = float(model.params.get("rate", 1.0))
    loss = 1.0 / (1.0 + rate * version) + 0.01 * partition
    return {
        "metrics": {"loss": loss, "accuracy": 1.0 - loss},
        "rows": dataset.val[partition].rows,
        "timings": {},
    }


def _state(model: Any, version: int) -> bytes:
    return f"{model.model_id}:{version}".encode()


def _check_state(store: Any, model: Any, version: int, state: bytes | None) -> None:
    """The state handed in is the model's at ``version``; without one, its checkpoint is in the Store
    (version 0's is written with the model, as the driver-side model factory does)."""
    if state is not None:
        if state != _state(model, version):
            raise ValueError(f"model {model.model_id} got state {state!r}, expected version {version}")
    elif version > 0 and store.read_bytes(model.checkpoint_key(version)) != _state(model, version):
        raise FileNotFoundError(f"checkpoint {version} of {model.model_id} is wrong")


def fake_tasks() -> TaskNames:
    """The :class:`~cerebro_spark.driver.TaskNames` of this module's fake tasks."""
    return TaskNames(setup=f"{__name__}:setup", train=f"{__name__}:train", evaluate=f"{__name__}:evaluate")


def fake_dataset(num_partitions: int, val_rows: int = 10) -> DatasetSpec:
    """A :class:`~cerebro_spark.data.spec.DatasetSpec` whose files the fake tasks never read."""
    root = "data/fake"
    return DatasetSpec(
        fingerprint="fake",
        root=root,
        features=(ColumnSpec("x", "float32", (3,)),),
        labels=(ColumnSpec("y", "int64"),),
        train=tuple(
            PartitionSpec(f"{root}/train/part-{i:05d}.parquet", 100 + i) for i in range(num_partitions)
        ),
        val=tuple(PartitionSpec(f"{root}/val/part-{i:05d}.parquet", val_rows) for i in range(num_partitions)),
    )


def fake_driver(
    backend: Any, store: Any, space: dict[str, Any], *, epochs: int = 2, seed: int = 5
) -> MopDriver:
    """A grid search over ``space`` on ``backend`` with the fake tasks and data (run id ``r1``, metric
    ``val_loss``): how a backend's tests run a whole search without TensorFlow."""

    def factory(trial: Any) -> ModelSpec:
        return ModelSpec(run_id="r1", model_id=trial.model_id, batch_size=8, params=dict(trial.params))

    return MopDriver(
        backend,
        store,
        fake_dataset(backend.num_workers),
        GridSearchAlgorithm(space, num_epochs=epochs),
        factory,
        RunSettings(run_id="r1", metric="val_loss", mode="min", seed=seed),
        tasks=fake_tasks(),
    )
