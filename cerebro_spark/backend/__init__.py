"""Backends run tasks on P long-lived workers: :class:`LocalBackend` (threads) and :class:`SparkBackend`.

``SparkBackend`` is imported on first use, so that importing this package does not import pyspark.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cerebro_spark.backend.base import Backend, TaskRequest, TaskResult, WorkerContext
from cerebro_spark.backend.local import LocalBackend

if TYPE_CHECKING:
    from cerebro_spark.backend.spark import SparkBackend

__all__ = ["Backend", "LocalBackend", "SparkBackend", "TaskRequest", "TaskResult", "WorkerContext"]


def __getattr__(name: str) -> Any:
    if name == "SparkBackend":
        from cerebro_spark.backend.spark import SparkBackend

        return SparkBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
