"""The tasks a worker runs: set up TensorFlow, train one sub-epoch, evaluate.

Each task is called by the worker loop as ``fn(ctx, **kwargs)`` with the worker's long-lived
:class:`~cerebro_spark.backend.base.WorkerContext`; its ``cache`` keeps the Keras models this
worker has built (with their traced train and test steps, :mod:`cerebro_spark.training.steps`) and
the partitions it has read. A model's state (weights and optimizer) travels in memory: the request
carries it as a state blob (:mod:`cerebro_spark.training.keras_io`), a training unit returns the new
one, and the driver makes it durable in the Store. So a hop costs an assignment of the variables
(about a millisecond on small models), not a file round trip, a rebuild or a retrace.

Imports TensorFlow lazily (inside the tasks) so that thread settings are applied first.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import OrderedDict
from typing import Any

from cerebro_spark.data.reader import PartitionCache, unit_seed
from cerebro_spark.data.spec import DatasetSpec
from cerebro_spark.store.base import Store
from cerebro_spark.training import keras_backend, keras_io
from cerebro_spark.training.io_mapping import column_order
from cerebro_spark.training.model_spec import ModelSpec
from cerebro_spark.training.steps import StepFunctions
from cerebro_spark.training.tf_import import import_tensorflow

logger = logging.getLogger(__name__)

#: How many built models one worker keeps in memory (least recently used ones are dropped).
MAX_CACHED_MODELS = int(os.environ.get("CEREBRO_MAX_CACHED_MODELS", "32"))

#: A state larger than this is not handed back in memory: the worker writes it to the Store itself
#: (the control plane's frames are bounded, and a driver should not hold states of that size).
INLINE_STATE_MAX_BYTES = int(os.environ.get("CEREBRO_INLINE_STATE_MAX_BYTES", str(256 << 20)))


def warm_up(ctx: Any) -> None:
    """Import TensorFlow (with the task's GPUs visible) as soon as the worker starts: the backend runs it
    beside the first tasks (``Backend.set_warm_up``), so that :func:`setup_worker` finds it imported."""
    _show_assigned_gpus(ctx)
    import_tensorflow()


def warm_up_jax(ctx: Any) -> None:
    """:func:`warm_up` for a search of Keras on JAX: Keras and JAX imported, Keras' backend set to JAX."""
    _show_assigned_gpus(ctx)
    keras_backend.use("jax")
    keras_backend.import_library("jax")
    import keras  # noqa: F401 (imported now, on JAX)


def _show_assigned_gpus(ctx: Any) -> tuple[str, ...]:
    """Make TensorFlow see only the GPUs Spark assigned to the task, if it is not imported yet."""
    gpus = tuple(getattr(ctx, "gpus", ()))
    if gpus and not any(m in sys.modules for m in keras_backend.BACKENDS):  # numbered from 0 as seen
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    elif gpus and os.environ.get("CUDA_VISIBLE_DEVICES") != ",".join(gpus):
        logger.debug("worker %d: TensorFlow already imported; its visible GPUs unchanged", ctx.worker_id)
    return gpus


def setup_worker(
    ctx: Any, *, seed: int | None = None, deterministic: bool = False, keras_backend_name: str = "tensorflow"
) -> dict[str, Any]:
    """Run Keras on ``keras_backend_name`` (the driver's), limit it to the task's cores and GPUs and, if
    asked, make its ops deterministic.

    Runs once per worker before any other task. With GPUs assigned by Spark (``ctx.gpus``), the backend
    sees only those (``CUDA_VISIBLE_DEVICES``); TensorFlow grows its memory on them as needed. In a
    process where the backend already ran (the in-process LocalBackend, a reused Python worker), thread
    limits and visible devices can no longer change: that is logged, not an error; a process that runs
    Keras on another backend fails the set-up with what to do. Returns what the driver logs and records
    in the run record (``workers``): pid, threads, the backend's version, the device.
    """
    gpus = _show_assigned_gpus(ctx)
    keras_backend.use(keras_backend_name)
    # TensorFlow's C++ logs (its start-up lines, tf.data's harmless "NodeDef mentions attribute" lines) would
    # flood the executors' stderr; errors still surface as Python exceptions. TF_CPP_MIN_LOG_LEVEL=0 shows them.
    report = keras_backend.set_up(keras_backend_name, ctx.cores, deterministic)
    if keras_backend_name == "tensorflow":
        report["device"] = _use_gpus(import_tensorflow(), ctx.worker_id, gpus)
    if seed is not None:
        import keras

        keras.utils.set_random_seed(seed)
    return {
        "worker_id": ctx.worker_id,
        "pid": os.getpid(),
        "cores": ctx.cores,
        "assigned_gpus": list(gpus),
        **report,
    }


def _use_gpus(tf: Any, worker_id: int, assigned: tuple[str, ...]) -> str:
    """Let TensorFlow grow its memory on the GPUs it sees (rather than take all of it at once: a GPU may
    hold other processes); returns the device this worker trains on, as a short text."""
    visible = tf.config.list_physical_devices("GPU")
    for gpu in visible:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except (RuntimeError, ValueError):  # TensorFlow already initialised this GPU
            logger.debug("worker %d: memory growth unchanged on %s", worker_id, gpu.name)
    if assigned and not visible:
        logger.warning(
            "worker %d: Spark assigned GPU %s but TensorFlow sees no GPU (a CPU-only TensorFlow? the gpu extra "
            "installs TensorFlow with CUDA): training on the CPU",
            worker_id,
            ",".join(assigned),
        )
    if not visible:
        return "CPU"
    return "GPU " + ",".join(assigned) if assigned else f"{len(visible)} GPU(s), none assigned by Spark"


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
    state: bytes | None = None,
) -> dict[str, Any]:
    """Train ``model`` for one pass over training partition ``partition``.

    Restores the model's state at ``from_version`` (weights and optimizer: ``state`` when the driver
    sends it, else the checkpoint in the Store), trains with the partition's rows in an order drawn
    from ``(seed, model, epoch, partition)``, and returns the new state, version ``from_version + 1``.

    Returns
    -------
    dict
        ``metrics`` (Keras' epoch-mean training metrics), ``rows``, ``version`` (the new one),
        ``state`` (its state blob, for the driver to hand on and to write as the checkpoint; None when
        it is larger than :data:`INLINE_STATE_MAX_BYTES`: then this task wrote the checkpoint) and
        ``timings`` (``load_s``, ``read_s``, ``train_s``, ``save_s``; ``build_s``: the part of
        ``load_s`` spent building the Keras model, 0.0 when this worker process had it built already).
    """
    t0, builds = time.perf_counter(), _builds(ctx)
    held = _model_at(ctx, store, model, from_version, state)
    t1 = time.perf_counter()
    data = _partitions(ctx, dataset, partition).get_or_read(store, dataset, "train", partition)
    data = data.shuffled(unit_seed(seed, model.model_id, epoch, partition))
    t2 = time.perf_counter()
    x_order, y_order = _column_order(held.model, dataset)
    metrics = held.train_pass(data.x(x_order), data.y(y_order), data.weights, model.batch_size)
    t3 = time.perf_counter()
    version = from_version + 1
    new_state = keras_io.get_state(held.model)
    inline = len(new_state) <= INLINE_STATE_MAX_BYTES
    if not inline:
        store.write_bytes(model.checkpoint_key(version), new_state)  # durable before the result
    _models(ctx)[model.cache_key] = (held, model.state_id(version))
    t4 = time.perf_counter()
    metrics["learning_rate"] = _learning_rate(held.model)
    logger.debug(
        "worker %d trained model %s epoch %d on partition %d (%d rows) in %.3fs",
        ctx.worker_id,
        model.model_id,
        epoch,
        partition,
        data.rows,
        t3 - t2,
    )
    return {
        "metrics": metrics,
        "rows": data.rows,
        "version": version,
        "state": new_state if inline else None,
        "timings": {
            "load_s": t1 - t0,
            "read_s": t2 - t1,
            "train_s": t3 - t2,
            "save_s": t4 - t3,
            "build_s": t1 - t0 if _builds(ctx) > builds else 0.0,
        },
    }


def evaluate(
    ctx: Any,
    *,
    store: Store,
    dataset: DatasetSpec,
    model: ModelSpec,
    partition: int,
    version: int,
    state: bytes | None = None,
) -> dict[str, Any]:
    """Evaluate ``model`` at ``version`` (``state``, else its checkpoint) on validation partition
    ``partition``.

    Returns ``metrics`` (Keras' names, without the ``val_`` prefix), ``rows`` and ``timings``.
    """
    t0 = time.perf_counter()
    held = _model_at(ctx, store, model, version, state)
    t1 = time.perf_counter()
    data = _partitions(ctx, dataset, partition).get_or_read(store, dataset, "val", partition)
    t2 = time.perf_counter()
    metrics: dict[str, float] = {}
    if data.rows:
        x_order, y_order = _column_order(held.model, dataset)
        # with sample weights, Keras' losses are per-row means of weighted losses and its metrics are
        # unweighted: the driver's row-weighted mean over partitions stays exact for both
        metrics = held.test_pass(data.x(x_order), data.y(y_order), data.weights, model.eval_batch_size)
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


def _models(ctx: Any) -> OrderedDict[str, tuple[StepFunctions, tuple[str, str, int]]]:
    """Built models (with their steps) by ``ModelSpec.cache_key``, each with the (run id, model id,
    version) whose state it holds (``ModelSpec.state_id``)."""
    return ctx.cache.setdefault("models", OrderedDict())  # type: ignore[no-any-return]


def _builds(ctx: Any) -> int:
    """How many Keras models this worker's cache has built (each traces its steps on first use)."""
    return int(ctx.cache.get("builds", 0))


def _partitions(ctx: Any, dataset: DatasetSpec, partition: int) -> PartitionCache:
    """The worker's partitions, holding those of ``dataset`` and ``partition`` only: a worker reads
    one partition index of one dataset (another search in a reused process may differ)."""
    cache: PartitionCache = ctx.cache.setdefault("partitions", PartitionCache())
    cache.keep_only(dataset.fingerprint, partition)
    return cache


def _model_at(
    ctx: Any, store: Store, spec: ModelSpec, version: int, state: bytes | None = None
) -> StepFunctions:
    """A compiled Keras model for ``spec`` (with its steps) holding the state of ``version``.

    Reuses this worker's built model when it has one for the spec's structure, restoring the state
    only when it is not already there (another model of the same structure ran since, or another
    worker trained this one): from ``state`` when given, else from the checkpoint in the Store. So
    each structure is built and traced once per worker.
    """
    models = _models(ctx)
    cached = models.get(spec.cache_key)
    held: tuple[str, str, int] | None = None
    if cached is None:
        steps = StepFunctions(_build(store, spec))
        ctx.cache["builds"] = _builds(ctx) + 1
    else:
        steps, held = cached
        models.move_to_end(spec.cache_key)
    if held != spec.state_id(version):
        if state is not None:
            keras_io.set_state(steps.model, state)
        else:
            keras_io.load_checkpoint(store, spec.checkpoint_key(version), steps.model)
    models[spec.cache_key] = (steps, spec.state_id(version))
    while len(models) > MAX_CACHED_MODELS:
        models.popitem(last=False)
    return steps


def _build(store: Store, spec: ModelSpec) -> Any:
    return keras_io.load_model(store, spec.initial_key, spec.custom_objects)
