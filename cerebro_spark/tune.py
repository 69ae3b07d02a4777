"""Model selection: grid, random, successive halving, Hyperband, ASHA and TPE searches, the search-space
primitives and the result."""

from cerebro_spark.ml.adaptive import ASHASearch, HyperbandSearch, SuccessiveHalvingSearch, TPESearch
from cerebro_spark.ml.selection import ModelSelectionModel
from cerebro_spark.ml.tune import GridSearch, RandomSearch
from cerebro_spark.search.space import (
    hp_choice,
    hp_loguniform,
    hp_qloguniform,
    hp_quniform,
    hp_randint,
    hp_repeat,
    hp_uniform,
)

__all__ = [
    "ASHASearch",
    "GridSearch",
    "HyperbandSearch",
    "ModelSelectionModel",
    "RandomSearch",
    "SuccessiveHalvingSearch",
    "TPESearch",
    "hp_choice",
    "hp_loguniform",
    "hp_qloguniform",
    "hp_quniform",
    "hp_randint",
    "hp_repeat",
    "hp_uniform",
]
