"""Every Param of the Spark ML classes, described once: name, doc, default, converter, constraint.

:mod:`cerebro_spark.ml._params` builds everything else from this table: the ``Param`` objects the
classes declare, their defaults, each class's keyword-only constructor, the ``getX``/``setX``
accessors and :func:`~cerebro_spark.ml._params.validate_params`. Names are snake_case, as the
constructors' keywords; accessors are camelCase, as PySpark ML's (``batch_size`` -> ``getBatchSize``,
``setBatchSize``).

A constraint returns None when a value is fine, else what was expected ("an int >= 1"); the validator
puts it in one message: "The 'batch_size' param of KerasEstimator must be an int >= 1. Received: 0."
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyspark.ml.param import TypeConverters

from cerebro_spark.backend.base import Backend
from cerebro_spark.store.base import Store

Check = Callable[[Any], "str | None"]

#: The default of a param that has none: the user must set it (``store``, the columns...).
REQUIRED: Any = type("Required", (), {"__repr__": lambda self: "REQUIRED"})()


@dataclass(frozen=True)
class ParamSpec:
    """One Param: its doc, its default (``REQUIRED`` when it has none), the converter Spark ML applies
    when it is set, the constraint checked before a fit, and the type its constructor keyword shows."""

    name: str
    doc: str
    default: Any = None
    converter: Callable[[Any], Any] = TypeConverters.identity
    check: Check | None = None
    annotation: str = "Any"


def to_str_list(value: Any) -> list[str]:
    """Accept one column name or a list of them."""
    if isinstance(value, str):
        return [value]
    return TypeConverters.toListString(value)  # type: ignore[no-any-return]


# ---- constraints ---------------------------------------------------------------------------------------


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def int_at_least(low: int) -> Check:
    return lambda v: None if _is_int(v) and v >= low else f"an int >= {low}"


def optional(check: Check) -> Check:
    def wrapped(v: Any) -> str | None:
        message = check(v)
        return None if v is None or message is None else f"{message} or None"

    return wrapped


def instance_of(cls: type, what: str) -> Check:
    return lambda v: None if isinstance(v, cls) else what


def one_of(*values: str) -> Check:
    return lambda v: None if v in values else "one of " + ", ".join(repr(x) for x in values)


def _any_int(v: Any) -> str | None:
    return None if v is None or _is_int(v) else "an int or None"


def _column_list(v: Any) -> str | None:
    ok = isinstance(v, list) and v and all(isinstance(c, str) and c for c in v) and len(set(v)) == len(v)
    return None if ok else "a non-empty list of distinct column names"


def _validation(v: Any) -> str | None:
    if v is None or isinstance(v, str) and v:
        return None
    if isinstance(v, numbers.Real) and not isinstance(v, bool) and 0 <= v < 1:
        return None
    return "None, a fraction in [0, 1) or the name of a boolean column"


def _text(v: Any) -> str | None:
    return None if isinstance(v, str) and v else "a non-empty string"


def _metric_list(v: Any) -> str | None:
    return (
        None if isinstance(v, (list, tuple)) else "a list of Keras metrics (names or keras.metrics objects)"
    )


_OPTIONAL_COLUMN = instance_of(str, "a column name, or '' for no such column")

_SPECS = [
    # ---- the model (KerasEstimator) ----
    ParamSpec("model", "a built keras.Model (required).", annotation="Any"),
    ParamSpec("optimizer", "a keras optimizer or its name; default: the compiled model's."),
    ParamSpec("loss", "the Keras loss; default: the compiled model's."),
    ParamSpec("metrics", "list of Keras metrics."),
    ParamSpec(
        "weighted_metrics",
        "list of Keras metrics weighted by the sample weights (Keras' weighted_metrics); None (default): none.",
        check=optional(_metric_list),
    ),
    ParamSpec("loss_weights", "weights of each output's loss (several outputs)."),
    ParamSpec(
        "batch_size", "rows per training step (>= 1).", 32, TypeConverters.toInt, int_at_least(1), "int"
    ),
    ParamSpec(
        "custom_objects",
        "custom Keras objects needed to load the model on the workers.",
        annotation="dict[str, Any] | None",
    ),
    # ---- the search ----
    ParamSpec(
        "estimator_gen_fn",
        "function of a configuration (dict) returning a KerasEstimator (required).",
        annotation="Callable[[dict[str, Any]], KerasEstimator] | None",
    ),
    ParamSpec(
        "search_space",
        "dict of name -> hp_choice/hp_uniform/... dimension or constant (required).",
        annotation="dict[str, Any] | None",
    ),
    ParamSpec(
        "num_models",
        "number of configurations to try (>= 1).",
        10,
        TypeConverters.toInt,
        int_at_least(1),
        "int",
    ),
    ParamSpec(
        "min_epochs",
        "epoch of the first rung, where models are first compared (>= 1).",
        1,
        TypeConverters.toInt,
        int_at_least(1),
        "int",
    ),
    ParamSpec(
        "max_epochs",
        "epochs of a model that is never stopped (>= min_epochs).",
        9,
        TypeConverters.toInt,
        int_at_least(1),
        "int",
    ),
    ParamSpec(
        "reduction_factor",
        "eta: a rung keeps the best 1/eta of its models (>= 2).",
        3,
        TypeConverters.toInt,
        int_at_least(2),
        "int",
    ),
    ParamSpec(
        "max_concurrent",
        "models training at once (>= 1); None: twice the number of workers.",
        check=optional(int_at_least(1)),
        annotation="int | None",
    ),
    ParamSpec(
        "evaluation_metric",
        "the history metric that ranks models, e.g. 'val_loss' or 'val_accuracy'.",
        "val_loss",
        TypeConverters.toString,
        _text,
        "str",
    ),
    ParamSpec(
        "mode",
        "'min' or 'max' for the evaluation metric; 'auto' infers it from the name.",
        "auto",
        TypeConverters.toString,
        one_of("auto", "min", "max"),
        "str",
    ),
    # ---- the data and the run (every estimator and search) ----
    ParamSpec(
        "feature_columns",
        "names of the feature columns, one per model input (required).",
        REQUIRED,
        to_str_list,
        _column_list,
        "list[str] | None",
    ),
    ParamSpec(
        "label_columns",
        "names of the label columns, one per model output (required).",
        REQUIRED,
        to_str_list,
        _column_list,
        "list[str] | None",
    ),
    ParamSpec(
        "store",
        "the Store holding prepared data, checkpoints and records (required).",
        REQUIRED,
        check=instance_of(Store, "a cerebro_spark Store (Store.create(path_or_url))"),
        annotation="Store | None",
    ),
    ParamSpec(
        "backend",
        "where training runs: a SparkBackend (default: one on the active SparkSession) or a LocalBackend.",
        check=optional(instance_of(Backend, "a cerebro_spark Backend (SparkBackend or LocalBackend)")),
        annotation="Backend | None",
    ),
    ParamSpec(
        "validation",
        "validation data: None (none), a fraction in (0, 1) split off with the seed, or the name of a "
        "boolean column.",
        check=_validation,
        annotation="float | str | None",
    ),
    ParamSpec(
        "num_epochs", "training epochs per model (>= 1).", 1, TypeConverters.toInt, int_at_least(1), "int"
    ),
    ParamSpec(
        "seed",
        "seed of the whole run; when set, results are reproducible (TF op determinism on).",
        check=_any_int,
        annotation="int | None",
    ),
    ParamSpec(
        "verbose",
        "0: quiet; 1: a live progress display (a table in terminals and notebooks, else a line every "
        "10 s) and, without it, a log line per model epoch (>= 0).",
        1,
        TypeConverters.toInt,
        int_at_least(0),
        "int",
    ),
    ParamSpec(
        "run_id",
        "name of the run folder in the Store (default: a new unique id).",
        check=optional(_text),
        annotation="str | None",
    ),
    ParamSpec(
        "tensorboard",
        "write TensorBoard event files (per-epoch metrics, sub-epoch times, hyperparameters) under each "
        "model's folder in the Store (needs the tensorboard package; skipped with a warning without it).",
        True,
        TypeConverters.toBoolean,
        instance_of(bool, "a bool"),
        "bool",
    ),
    ParamSpec(
        "mlflow_experiment",
        "name of an MLflow experiment to record the search in (a parent run, a nested run per model), "
        "at MLflow's tracking URI; None (default) records nothing. Needs the mlflow extra.",
        check=optional(_text),
        annotation="str | None",
    ),
    ParamSpec(
        "sample_weight_column",
        "name of a numeric column of per-row weights (>= 0), passed to Keras' fit and evaluate as "
        "sample_weight; None (default): every row weighs 1.",
        check=optional(_text),
        annotation="str | None",
    ),
    ParamSpec(
        "reader",
        "how workers read prepared partitions: 'pyarrow' (default) or 'petastorm' (Petastorm's "
        "make_batch_reader; needs the petastorm extra and its environment, see docs/petastorm.md).",
        "pyarrow",
        check=one_of("pyarrow", "petastorm"),
        annotation="str",
    ),
    # ---- how a fitted model writes predictions (every estimator, search and model) ----
    ParamSpec(
        "prediction_col",
        "name of the output column (a model with several outputs gets '<name>_0', '<name>_1', ...).",
        "prediction",
        TypeConverters.toString,
        _text,
        "str",
    ),
    ParamSpec(
        "probability_col",
        "classifiers: name of the class-probabilities column ('' for none; default 'probability').",
        "probability",
        TypeConverters.toString,
        _OPTIONAL_COLUMN,
        "str",
    ),
    ParamSpec(
        "raw_prediction_col",
        "classifiers: name of the column holding the model's output as it is, probabilities or logits "
        "('' for none; default 'rawPrediction').",
        "rawPrediction",
        TypeConverters.toString,
        _OPTIONAL_COLUMN,
        "str",
    ),
    ParamSpec(
        "output_type",
        "type of the multi-value output columns: 'array' (array<float>, default) or 'vector' "
        "(pyspark.ml.linalg DenseVector, as Spark ML's classifiers write probabilities).",
        "array",
        TypeConverters.toString,
        one_of("array", "vector"),
        "str",
    ),
    ParamSpec(
        "task",
        "'auto' (default: an output is a classifier when its compiled loss is a cross-entropy, focal, "
        "hinge or KL loss), 'classification' or 'regression'.",
        "auto",
        TypeConverters.toString,
        one_of("auto", "classification", "regression"),
        "str",
    ),
    ParamSpec(
        "inference_batch_size",
        "rows per predict call in transform (>= 1).",
        1024,
        TypeConverters.toInt,
        int_at_least(1),
        "int",
    ),
]

#: Every Param by name, in the order constructors list them.
PARAMS: dict[str, ParamSpec] = {spec.name: spec for spec in _SPECS}

#: The params that say how a fitted model writes predictions, with their defaults.
PREDICTION_DEFAULTS: dict[str, Any] = {
    name: PARAMS[name].default
    for name in (
        "prediction_col",
        "probability_col",
        "raw_prediction_col",
        "output_type",
        "task",
        "inference_batch_size",
    )
}
