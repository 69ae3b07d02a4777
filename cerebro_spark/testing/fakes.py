"""Fake worker tasks: the driver's loop runs on them without TensorFlow (a documented test double).

They follow the real tasks' contracts (:mod:`cerebro_spark.training.trainer`): a training unit
returns the next version and row-weighted metrics; an evaluation returns metrics and rows. The
loss of a model goes down with every unit it trains, faster for a larger ``params["rate"]``, so
tests can check which model is best. ``params["fail_at_epoch"]`` makes a model raise.
"""

from __future__ import annotations

from typing import Any


def setup(ctx: Any, *, seed: int | None = None, deterministic: bool = False) -> dict[str, Any]:
    return {"worker_id": ctx.worker_id}


def train(ctx: Any, *, store: Any, dataset: Any, model: Any, epoch: int, partition: int,
          from_version: int, seed: int) -> dict[str, Any]:  # fmt: skip
    if model.params.get("fail_at_epoch") == epoch:
        raise ValueError(f"model {model.model_id} diverged (fake)")
    version = from_version + 1
    store.write_bytes(model.checkpoint_key(version), f"{model.model_id}:{version}".encode())
    rate = float(model.params.get("rate", 1.0))
    rows = dataset.train[partition].rows
    return {"metrics": {"loss": 1.0 / (1.0 + rate * version)}, "rows": rows, "version": version,
            "timings": {"load_s": 0.0, "read_s": 0.0, "train_s": 0.0, "save_s": 0.0}}  # fmt: skip


def evaluate(
    ctx: Any, *, store: Any, dataset: Any, model: Any, partition: int, version: int
) -> dict[str, Any]:
    if not store.exists(model.checkpoint_key(version)):
        raise FileNotFoundError(f"checkpoint {version} of {model.model_id} is gone")
    rate = float(model.params.get("rate", 1.0))
    loss = 1.0 / (1.0 + rate * version) + 0.01 * partition
    return {
        "metrics": {"loss": loss, "accuracy": 1.0 - loss},
        "rows": dataset.val[partition].rows,
        "timings": {},
    }
