"""The MOP training loop on the driver (no Spark, no Keras imports)."""

from cerebro_spark.driver.loop import DriverCallback, MopDriver, RunSettings, TaskNames
from cerebro_spark.driver.records import EpochRecord, ModelRecord, SearchResult, UnitRecord

__all__ = [
    "DriverCallback",
    "EpochRecord",
    "ModelRecord",
    "MopDriver",
    "RunSettings",
    "SearchResult",
    "TaskNames",
    "UnitRecord",
]
