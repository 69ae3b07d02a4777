"""The Store: where prepared data, checkpoints and run records live (see :mod:`cerebro_spark.store.base`)."""

from __future__ import annotations

from cerebro_spark.store import layout
from cerebro_spark.store.base import Store
from cerebro_spark.store.fs import FilesystemStore, create_store

__all__ = ["FilesystemStore", "Store", "create_store", "layout"]
