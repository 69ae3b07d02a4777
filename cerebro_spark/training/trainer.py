"""The tasks a worker runs: set up TensorFlow, train one sub-epoch, evaluate.

Each task is called by the worker loop as ``fn(ctx, **kwargs)`` with the worker's long-lived
:class:`~cerebro_spark.backend.base.WorkerContext`; its ``cache`` keeps the Keras models this
worker has built and the partitions it has read, so a hop back to a worker that already holds a
model costs one checkpoint load (tens of milliseconds), not a rebuild and a retrace.

Imports TensorFlow lazily (inside the tasks) so that thread settings are applied first.
"""

from __future__ import annotations

import logging
import os
import pickle
import tempfile
import time
from collections import OrderedDict
from typing import Any

from cerebro_spark.data.reader import PartitionCache, unit_seed
from cerebro_spark.data.spec import DatasetSpec
from cerebro_spark.store.base import Store
from cerebro_spark.training.io_mapping import column_order
from cerebro_spark.training.model_spec import ModelSpec

logger = logging.getLogger(__name__)

#: How many built models one worker keeps in memory (least recently used ones are dropped).
MAX_CACHED_MODELS = int(os.environ.get("CEREBRO_MAX_CACHED_MODELS", "32"))


def setup_worker(ctx: Any, *, seed: int | None = None, deterministic: bool = False) -> dict[str, Any]:
    """Limit TensorFlow to the task's cores and, if asked, make its ops deterministic.

    Runs once per worker before any other task. In a process where TensorFlow already ran (the
    in-process LocalBackend), thread limits can no longer change: that is logged, not an error.
    """
    # TensorFlow's C++ logs (e.g. tf.data's harmless "NodeDef mentions attribute" lines) would flood the
    # executors' stderr; errors still surface as Python exceptions. Set TF_CPP_MIN_LOG_LEVEL=0 to see them.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(ctx.cores)
        tf.config.threading.set_inter_op_parallelism_threads(ctx.cores)
    except RuntimeError:
        logger.debug("worker %d: TensorFlow already initialised; thread limits unchanged", ctx.worker_id)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    if seed is not None:
        import keras

        keras.utils.set_random_seed(seed)
    return {
        "pid": os.getpid(),
        "cores": ctx.cores,
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "tensorflow": tf.__version__,
    }


def train_sub_epoch(
    ctx: Any,
    *,
    store: Store,
    dataset: DatasetSpec,
    model: ModelSpec,
    epoch: int,
    partition: int,
    from_version: int,
    seed: int,
) -> dict[str, Any]:
    """Train ``model`` for one pass over training partition ``partition``.

    Restores the model's state at ``from_version`` (weights and optimizer), trains with the
    partition's rows in an order drawn from ``(seed, model, epoch, partition)``, and saves the
    state as version ``from_version + 1``.

    Returns
    -------
    dict
        ``metrics`` (Keras' epoch-mean training metrics), ``rows``, ``version`` (the new one) and
        ``timings`` (``load_s``, ``read_s``, ``train_s``, ``save_s``).
    """
    t0 = time.perf_counter()
    keras_model = _model_at(ctx, store, model, from_version)
    t1 = time.perf_counter()
    data = _partitions(ctx).get_or_read(store, dataset, "train", partition)
    data = data.shuffled(unit_seed(seed, model.model_id, epoch, partition))
    t2 = time.perf_counter()
    x_order, y_order = _column_order(keras_model, dataset)
    history = keras_model.fit(
        data.x(x_order), data.y(y_order), sample_weight=data.weights,
        batch_size=model.batch_size, epochs=1, shuffle=False, verbose=0,
    )  # fmt: skip
    t3 = time.perf_counter()
    version = from_version + 1
    _save_checkpoint(store, keras_model, model.checkpoint_key(version))
    _models(ctx)[model.cache_key] = (keras_model, (model.model_id, version))
    t4 = time.perf_counter()
    metrics = {name: float(values[-1]) for name, values in history.history.items()}
    metrics["learning_rate"] = _learning_rate(keras_model)
    logger.info(
        "worker %d trained model %s epoch %d on partition %d (%d rows) in %.2fs",
        ctx.worker_id, model.model_id, epoch, partition, data.rows, t3 - t2,
    )  # fmt: skip
    return {
        "metrics": metrics,
        "rows": data.rows,
        "version": version,
        "timings": {"load_s": t1 - t0, "read_s": t2 - t1, "train_s": t3 - t2, "save_s": t4 - t3},
    }


def evaluate(
    ctx: Any,
    *,
    store: Store,
    dataset: DatasetSpec,
    model: ModelSpec,
    partition: int,
    version: int,
) -> dict[str, Any]:
    """Evaluate ``model`` at ``version`` on validation partition ``partition``.

    Returns ``metrics`` (Keras' names, without the ``val_`` prefix), ``rows`` and ``timings``.
    """
    t0 = time.perf_counter()
    keras_model = _model_at(ctx, store, model, version)
    t1 = time.perf_counter()
    data = _partitions(ctx).get_or_read(store, dataset, "val", partition)
    t2 = time.perf_counter()
    metrics: dict[str, float] = {}
    if data.rows:
        x_order, y_order = _column_order(keras_model, dataset)
        result = keras_model.evaluate(
            data.x(x_order), data.y(y_order), sample_weight=data.weights,
            batch_size=model.eval_batch_size, verbose=0, return_dict=True,
        )  # fmt: skip
        # with sample weights, Keras' losses are per-row means of weighted losses and its metrics are
        # unweighted: the driver's row-weighted mean over partitions stays exact for both
        metrics = {name: float(value) for name, value in result.items()}
    t3 = time.perf_counter()
    return {
        "metrics": metrics,
        "rows": data.rows,
        "timings": {"load_s": t1 - t0, "read_s": t2 - t1, "eval_s": t3 - t2},
    }


def _column_order(keras_model: Any, dataset: DatasetSpec) -> tuple[list[int], list[int]]:
    return column_order(keras_model, [c.name for c in dataset.features], [c.name for c in dataset.labels])


def _learning_rate(keras_model: Any) -> float:
    """The optimizer's learning rate now (a schedule's current value), for the history and TensorBoard."""
    import keras

    return float(keras.ops.convert_to_numpy(keras_model.optimizer.learning_rate))


# ---- the worker's caches -------------------------------------------------------------------------


def _models(ctx: Any) -> OrderedDict[str, tuple[Any, tuple[str, int]]]:
    """Built models by ``ModelSpec.cache_key``, each with the (model id, version) its state holds."""
    return ctx.cache.setdefault("models", OrderedDict())  # type: ignore[no-any-return]


def _partitions(ctx: Any) -> PartitionCache:
    return ctx.cache.setdefault("partitions", PartitionCache())  # type: ignore[no-any-return]


def _model_at(ctx: Any, store: Store, spec: ModelSpec, version: int) -> Any:
    """A compiled Keras model for ``spec`` holding the state of ``version``.

    Reuses this worker's built model when it has one for the spec's structure, loading the
    checkpoint only when the model's state is not already there (another model of the same
    structure ran since, or another worker trained this one); so each structure is built and
    traced once per worker.
    """
    models = _models(ctx)
    cached = models.get(spec.cache_key)
    state: tuple[str, int] | None = None
    if cached is None:
        keras_model = _build(store, spec)
    else:
        keras_model, state = cached
        models.move_to_end(spec.cache_key)
    if state != (spec.model_id, version):
        _load_checkpoint(store, keras_model, spec.checkpoint_key(version))
    models[spec.cache_key] = (keras_model, (spec.model_id, version))
    while len(models) > MAX_CACHED_MODELS:
        models.popitem(last=False)
    return keras_model


def _build(store: Store, spec: ModelSpec) -> Any:
    import keras

    custom_objects = pickle.loads(spec.custom_objects) if spec.custom_objects else None  # noqa: S301
    with store.local_copy(spec.initial_key) as path:
        model = keras.models.load_model(path, custom_objects=custom_objects, compile=True)
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    return model


def _load_checkpoint(store: Store, keras_model: Any, key: str) -> None:
    with store.local_copy(key) as path:
        keras_model.load_weights(path)


def _save_checkpoint(store: Store, keras_model: Any, key: str) -> None:
    """Write weights and optimizer state to ``key`` atomically (never legacy ``.h5``)."""
    with tempfile.TemporaryDirectory(prefix="cerebro-ckpt-") as tmp:
        path = os.path.join(tmp, "state.weights.h5")
        keras_model.save_weights(path)
        store.upload(path, key)
