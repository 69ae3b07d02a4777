"""cerebro_spark: deep-learning model selection on Apache Spark with Model Hopper Parallelism.

The core names are importable from here; the Spark ML classes live in :mod:`cerebro_spark.keras`
(``KerasEstimator``, ``KerasModel``) and :mod:`cerebro_spark.tune` (``GridSearch``,
``RandomSearch``, ``hp_*``). ``SparkBackend``, ``DaskBackend`` and ``RayBackend`` are imported on
first use, so the pure parts of the package work without pyspark, Dask or Ray. ``trust_pickles``
lets a load unpickle saved files (see :mod:`cerebro_spark._trust`).
"""

from __future__ import annotations

from typing import Any

from cerebro_spark import backend as _backend
from cerebro_spark._trust import trust_pickles
from cerebro_spark._version import __version__
from cerebro_spark.backend.base import Backend
from cerebro_spark.backend.local import LocalBackend
from cerebro_spark.backend.standalone import StandaloneBackend
from cerebro_spark.store.base import Store

__all__ = [
    "Backend",
    "DaskBackend",
    "LocalBackend",
    "RayBackend",
    "SparkBackend",
    "StandaloneBackend",
    "Store",
    "__version__",
    "trust_pickles",
]


def __getattr__(name: str) -> Any:
    if name in ("SparkBackend", "DaskBackend", "RayBackend"):  # imported on first use
        return getattr(_backend, name)
    raise AttributeError(f"module 'cerebro_spark' has no attribute {name!r}")
