"""Backends run tasks on P long-lived workers: :class:`LocalBackend` (threads), :class:`SparkBackend`
(a Spark barrier stage) and :class:`StandaloneBackend` (``cerebro-worker`` processes started by hand).

``SparkBackend`` is imported on first use, so that importing this package does not import pyspark.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cerebro_spark.backend.base import Backend, TaskRequest, TaskResult, WorkerContext
from cerebro_spark.backend.local import LocalBackend
from cerebro_spark.backend.standalone import StandaloneBackend

if TYPE_CHECKING:
    from cerebro_spark.backend.spark import SparkBackend

__all__ = [
    "Backend",
    "LocalBackend",
    "SparkBackend",
    "StandaloneBackend",
    "TaskRequest",
    "TaskResult",
    "WorkerContext",
]


def __getattr__(name: str) -> Any:
    if name == "SparkBackend":
        from cerebro_spark.backend.spark import SparkBackend

        return SparkBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
