"""The pure MOP scheduler: which model trains on which worker next (no Spark, no I/O, no clock)."""

from __future__ import annotations

from cerebro_spark.scheduler.mop import Assignment, EpochEnd, MopScheduler, Unit, UnitKind

__all__ = ["Assignment", "EpochEnd", "MopScheduler", "Unit", "UnitKind"]
