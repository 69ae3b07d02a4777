"""cerebro_spark: deep-learning model selection on Apache Spark with Model Hopper Parallelism."""

from cerebro_spark._version import __version__

__all__ = ["__version__"]
