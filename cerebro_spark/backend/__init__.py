"""Backends run tasks on P long-lived workers: :class:`LocalBackend` (threads), :class:`SparkBackend`
(a Spark barrier stage) and :class:`StandaloneBackend` (``cerebro-worker`` processes started by hand).

``SparkBackend``, ``DaskBackend`` and ``RayBackend`` are imported on first use, so that importing this
package imports no engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cerebro_spark.backend.base import Backend, TaskRequest, TaskResult, WorkerContext
from cerebro_spark.backend.local import LocalBackend
from cerebro_spark.backend.standalone import StandaloneBackend

if TYPE_CHECKING:
    from cerebro_spark.backend.dask import DaskBackend
    from cerebro_spark.backend.ray import RayBackend
    from cerebro_spark.backend.spark import SparkBackend

__all__ = [
    "Backend",
    "DaskBackend",
    "LocalBackend",
    "RayBackend",
    "SparkBackend",
    "StandaloneBackend",
    "TaskRequest",
    "TaskResult",
    "WorkerContext",
]


#: The backends of an engine, imported on first use: their modules import it (pyspark, Dask, Ray) lazily.
_ENGINES = {
    "SparkBackend": "cerebro_spark.backend.spark",
    "DaskBackend": "cerebro_spark.backend.dask",
    "RayBackend": "cerebro_spark.backend.ray",
}


def __getattr__(name: str) -> Any:
    if name in _ENGINES:
        return getattr(importlib.import_module(_ENGINES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
