"""Pure search algorithms and search spaces (numpy only; no Spark, no Keras, no I/O)."""

from __future__ import annotations

from cerebro_spark.search.asha import ASHAAlgorithm
from cerebro_spark.search.base import (
    Decision,
    FixedTrialsAlgorithm,
    SearchAlgorithm,
    SingleTrialAlgorithm,
    Trial,
    check_positive_int,
    make_model_id,
)
from cerebro_spark.search.grid_search import GridSearchAlgorithm
from cerebro_spark.search.halving import HyperbandAlgorithm, SuccessiveHalvingAlgorithm
from cerebro_spark.search.metrics import Mode, best_index, infer_mode, is_better, resolve_mode
from cerebro_spark.search.random_search import RandomSearchAlgorithm
from cerebro_spark.search.space import (
    MAX_GRID_VALUES,
    Choice,
    Dimension,
    IntRange,
    LogUniform,
    QLogUniform,
    QUniform,
    Repeat,
    Uniform,
    describe_space,
    flatten_params,
    grid,
    hp_choice,
    hp_loguniform,
    hp_qloguniform,
    hp_quniform,
    hp_randint,
    hp_repeat,
    hp_uniform,
    is_nested,
    sample,
    stable_hash,
    validate_space,
)
from cerebro_spark.search.tpe import TPEAlgorithm  # Optuna is imported only when one is made

__all__ = [
    "ASHAAlgorithm",
    "HyperbandAlgorithm",
    "SuccessiveHalvingAlgorithm",
    "TPEAlgorithm",
    "MAX_GRID_VALUES",
    "Choice",
    "Decision",
    "Dimension",
    "IntRange",
    "Repeat",
    "GridSearchAlgorithm",
    "LogUniform",
    "Mode",
    "QLogUniform",
    "QUniform",
    "RandomSearchAlgorithm",
    "SearchAlgorithm",
    "FixedTrialsAlgorithm",
    "SingleTrialAlgorithm",
    "Trial",
    "Uniform",
    "best_index",
    "check_positive_int",
    "describe_space",
    "flatten_params",
    "grid",
    "hp_choice",
    "hp_loguniform",
    "hp_qloguniform",
    "hp_quniform",
    "hp_randint",
    "hp_repeat",
    "hp_uniform",
    "is_nested",
    "infer_mode",
    "is_better",
    "make_model_id",
    "resolve_mode",
    "sample",
    "stable_hash",
    "validate_space",
]
