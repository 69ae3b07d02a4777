"""Keras on Spark: ``KerasEstimator`` (a ``pyspark.ml`` Estimator) and the ``KerasModel`` it returns."""

from cerebro_spark.ml.estimator import KerasEstimator
from cerebro_spark.ml.model import KerasModel

__all__ = ["KerasEstimator", "KerasModel"]
