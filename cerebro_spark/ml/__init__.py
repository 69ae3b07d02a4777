"""The Spark ML surface: Estimators and Models that users put in their pipelines."""

from cerebro_spark.ml.adaptive import ASHASearch, HyperbandSearch, SuccessiveHalvingSearch, TPESearch
from cerebro_spark.ml.estimator import KerasEstimator
from cerebro_spark.ml.model import KerasModel
from cerebro_spark.ml.selection import ModelSelectionModel
from cerebro_spark.ml.tune import GridSearch, RandomSearch

__all__ = [
    "ASHASearch",
    "GridSearch",
    "HyperbandSearch",
    "KerasEstimator",
    "KerasModel",
    "ModelSelectionModel",
    "RandomSearch",
    "SuccessiveHalvingSearch",
    "TPESearch",
]
