"""Which Keras backend runs the models (TensorFlow or JAX), the same on the driver and the workers.

Keras 3 picks its backend once per process, when ``keras`` is first imported: from ``KERAS_BACKEND``,
else ``~/.keras/keras.json``, else TensorFlow. The driver's choice is the search's: ``run_search``
reads it and every worker's set-up applies it before its first ``import keras`` (a Spark executor does
not see the driver's environment). The backend's own settings follow: threads per worker, op
determinism with a seed, the devices it sees.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from cerebro_spark.errors import InvalidParamError, TrainingError
from cerebro_spark.training.tf_import import import_tensorflow

logger = logging.getLogger(__name__)

#: The Keras backends searches run on. (PyTorch's: not yet; its PyPI wheels bring CUDA, gigabytes, even
#: for a CPU, so it is neither installed nor tested here.)
BACKENDS = ("tensorflow", "jax")


def configured() -> str:
    """The backend this process uses or will use: Keras' own when imported, else ``KERAS_BACKEND``, else
    ``~/.keras/keras.json``'s, else ``"tensorflow"`` (Keras' rule), without importing Keras."""
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "backend"):
        return str(keras.backend.backend())
    name = os.environ.get("KERAS_BACKEND")
    if not name:
        config = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "keras.json"
        try:
            name = json.loads(config.read_text()).get("backend")
        except (OSError, ValueError):
            name = None
    return str(name or "tensorflow")


def check(name: str) -> str:
    """``name`` if searches run Keras on it, else InvalidParamError naming ``KERAS_BACKEND``."""
    if name not in BACKENDS:
        raise InvalidParamError(
            f"cerebro_spark runs Keras on {' or '.join(BACKENDS)} (KERAS_BACKEND, or ~/.keras/keras.json). "
            f"Received: {name!r}."
        )
    return name


def use(name: str) -> None:
    """Make this process run Keras on ``name`` (before Keras is imported).

    Raises
    ------
    InvalidParamError
        For a backend cerebro_spark does not run on.
    TrainingError
        When Keras is already imported here with another backend (a Python worker reused from a search
        on another backend): it cannot change within a process.
    """
    check(name)
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "backend"):
        running = keras.backend.backend()
        if running != name:
            raise TrainingError(
                f"This worker process (pid {os.getpid()}) already runs Keras on {running!r}, and the search "
                f"runs it on {name!r}: a process cannot change its Keras backend. Start new workers (a new "
                "Spark application, Dask cluster or Ray session, new cerebro-worker processes)."
            )
        return
    os.environ["KERAS_BACKEND"] = name


def import_library(name: str) -> ModuleType:
    """Import the backend's library: TensorFlow without its start-up lines, or JAX."""
    if name == "tensorflow":
        return import_tensorflow()
    check(name)
    if "jax" not in sys.modules:
        _limit_xla_threads(int(os.environ.get("OMP_NUM_THREADS", "0")))
    import jax

    return jax


def _limit_xla_threads(cores: int) -> None:
    """XLA's CPU threads: the worker's cores (read once, when JAX starts; OMP_NUM_THREADS is the worker's)."""
    if cores < 1 or "intra_op_parallelism_threads" in os.environ.get("XLA_FLAGS", ""):
        return
    flags = f"--xla_cpu_multi_thread_eigen={'true' if cores > 1 else 'false'} intra_op_parallelism_threads={cores}"
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flags}".strip()


def set_up(name: str, cores: int, deterministic: bool) -> dict[str, Any]:
    """Threads, determinism and the device for ``name`` in a worker; what the set-up reports."""
    if name == "tensorflow":
        return _set_up_tensorflow(cores, deterministic)
    jax = import_library(name)  # XLA on the CPU is deterministic; its threads were set before it started
    devices = sorted({d.platform.upper() for d in jax.devices()})
    return {"keras_backend": "jax", "jax": jax.__version__, "device": ",".join(devices)}


def _set_up_tensorflow(cores: int, deterministic: bool) -> dict[str, Any]:
    tf = import_library("tensorflow")
    try:
        tf.config.threading.set_intra_op_parallelism_threads(cores)
        tf.config.threading.set_inter_op_parallelism_threads(cores)
    except RuntimeError:
        logger.debug("TensorFlow already initialised; thread limits unchanged")
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    return {
        "keras_backend": "tensorflow",
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "tensorflow": tf.__version__,
    }
