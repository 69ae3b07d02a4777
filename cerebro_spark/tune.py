"""Model selection: ``GridSearch``, ``RandomSearch``, the search-space primitives and the result."""

from cerebro_spark.ml.selection import ModelSelectionModel
from cerebro_spark.ml.tune import GridSearch, RandomSearch
from cerebro_spark.search.space import hp_choice, hp_loguniform, hp_qloguniform, hp_quniform, hp_uniform

__all__ = [
    "GridSearch",
    "ModelSelectionModel",
    "RandomSearch",
    "hp_choice",
    "hp_loguniform",
    "hp_qloguniform",
    "hp_quniform",
    "hp_uniform",
]
