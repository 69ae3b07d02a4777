"""Params shared by the Spark ML classes, and one place that validates them.

Each Param is declared once with its doc; its constraint lives next to it in ``CONSTRAINTS`` and
:func:`validate_params` checks them all at the top of ``_fit`` with one message template:
"The 'batch_size' param of KerasEstimator must be an int >= 1. Received: 0."
"""

from __future__ import annotations

import functools
import inspect
import numbers
from collections.abc import Callable
from typing import Any, TypedDict, TypeVar

from pyspark.ml.param import Param, Params, TypeConverters

from cerebro_spark.backend.base import Backend
from cerebro_spark.errors import InvalidParamError
from cerebro_spark.ml._dataset import PreparedData
from cerebro_spark.store.base import Store


def _param(name: str, doc: str, converter: Callable[[Any], Any] = TypeConverters.identity) -> Param[Any]:
    return Param(Params._dummy(), name, doc, typeConverter=converter)


def _to_str_list(value: Any) -> list[str]:
    """Accept one column name or a list of them."""
    if isinstance(value, str):
        return [value]
    return TypeConverters.toListString(value)  # type: ignore[no-any-return]


# ---- constraints: each returns None when fine, else what was expected ------------------------------


def _int_at_least(low: int) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        ok = isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= low
        return None if ok else f"an int >= {low}"

    return check


def _optional_int(v: Any) -> str | None:
    return (
        None
        if v is None or (isinstance(v, numbers.Integral) and not isinstance(v, bool))
        else "an int or None"
    )


def _non_empty_str_list(v: Any) -> str | None:
    ok = isinstance(v, list) and v and all(isinstance(c, str) and c for c in v) and len(set(v)) == len(v)
    return None if ok else "a non-empty list of distinct column names"


def _validation(v: Any) -> str | None:
    if v is None or isinstance(v, str) and v:
        return None
    if isinstance(v, numbers.Real) and not isinstance(v, bool) and 0 <= v < 1:
        return None
    return "None, a fraction in [0, 1) or the name of a boolean column"


def _instance_of(cls: type, what: str) -> Callable[[Any], str | None]:
    return lambda v: None if isinstance(v, cls) else what


def _one_of(*values: str) -> Callable[[Any], str | None]:
    return lambda v: None if v in values else "one of " + ", ".join(repr(x) for x in values)


def _non_empty_str(v: Any) -> str | None:
    return None if isinstance(v, str) and v else "a non-empty string"


def _metric_list(v: Any) -> str | None:
    return (
        None if isinstance(v, (list, tuple)) else "a list of Keras metrics (names or keras.metrics objects)"
    )


def _optional(check: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
    def wrapped(v: Any) -> str | None:
        message = check(v)
        return None if v is None or message is None else f"{message} or None"

    return wrapped


CONSTRAINTS: dict[str, Callable[[Any], str | None]] = {
    "store": _instance_of(Store, "a cerebro_spark Store (Store.create(path_or_url))"),
    "backend": _optional(_instance_of(Backend, "a cerebro_spark Backend (SparkBackend or LocalBackend)")),
    "feature_columns": _non_empty_str_list,
    "label_columns": _non_empty_str_list,
    "validation": _validation,
    "num_epochs": _int_at_least(1),
    "batch_size": _int_at_least(1),
    "seed": _optional_int,
    "verbose": _int_at_least(0),
    "run_id": _optional(_non_empty_str),
    "tensorboard": _instance_of(bool, "a bool"),
    "mlflow_experiment": _optional(_non_empty_str),
    "reader": _one_of("pyarrow", "petastorm"),
    "evaluation_metric": _non_empty_str,
    "mode": _one_of("auto", "min", "max"),
    "num_models": _int_at_least(1),
    "inference_batch_size": _int_at_least(1),
    "prediction_col": _non_empty_str,
    "probability_col": _instance_of(str, "a column name, or '' for no such column"),
    "raw_prediction_col": _instance_of(str, "a column name, or '' for no such column"),
    "output_type": _one_of("array", "vector"),
    "task": _one_of("auto", "classification", "regression"),
    "sample_weight_column": _optional(_non_empty_str),
    "weighted_metrics": _optional(_metric_list),
}

#: The params naming the columns ``transform`` writes: no two may be the same (``''`` skips one).
_OUTPUT_COLUMN_PARAMS = ("prediction_col", "probability_col", "raw_prediction_col")


def validate_params(instance: Params, names: list[str] | None = None) -> None:
    """Check every Param of ``instance`` that has a constraint (or those in ``names``).

    Raises
    ------
    InvalidParamError
        Naming the param, the class, what was expected and what was received.
    """
    for param in instance.params:
        if names is not None and param.name not in names:
            continue
        check = CONSTRAINTS.get(param.name)
        if check is None:
            continue
        value = instance.getOrDefault(param) if instance.isDefined(param) else None
        expected = check(value)
        if expected is not None:
            missing = " (it is required)" if value is None else ""
            raise InvalidParamError(
                f"The {param.name!r} param of {type(instance).__name__} must be {expected}{missing}. "
                f"Received: {value!r}."
            )
    if all(instance.hasParam(n) and (names is None or n in names) for n in _OUTPUT_COLUMN_PARAMS):
        _check_distinct_columns(instance)


def _check_distinct_columns(instance: Params) -> None:
    """prediction_col, probability_col and raw_prediction_col name different columns."""
    seen: dict[str, str] = {}
    for name in _OUTPUT_COLUMN_PARAMS:
        column = instance.getOrDefault(name)
        if column and column in seen:
            raise InvalidParamError(
                f"The {name!r} param of {type(instance).__name__} must differ from {seen[column]} "
                f"({column!r}): each names its own output column. Received: {column!r}."
            )
        seen.setdefault(column, name)


class HasDataParams(Params):
    """Where the data comes from and where the run lives: shared by the estimator and the searches."""

    store: Param[Store] = _param(
        "store", "the Store holding prepared data, checkpoints and records (required)."
    )
    backend: Param[Backend] = _param(
        "backend",
        "where training runs: a SparkBackend (default: one on the active SparkSession) or a LocalBackend.",
    )
    feature_columns: Param[list[str]] = _param(
        "feature_columns", "names of the feature columns, one per model input (required).", _to_str_list
    )
    label_columns: Param[list[str]] = _param(
        "label_columns", "names of the label columns, one per model output (required).", _to_str_list
    )
    validation: Param[Any] = _param(
        "validation",
        "validation data: None (none), a fraction in (0, 1) split off with the seed, or the name of a boolean column.",
    )
    num_epochs: Param[int] = _param("num_epochs", "training epochs per model (>= 1).", TypeConverters.toInt)
    seed: Param[int] = _param(
        "seed", "seed of the whole run; when set, results are reproducible (TF op determinism on)."
    )
    verbose: Param[int] = _param(
        "verbose",
        "0: quiet; 1: a live progress display (a table in terminals and notebooks, else a line every "
        "10 s) and, without it, a log line per model epoch (>= 0).",
        TypeConverters.toInt,
    )
    run_id: Param[str] = _param("run_id", "name of the run folder in the Store (default: a new unique id).")
    tensorboard: Param[bool] = _param(
        "tensorboard",
        "write TensorBoard event files (per-epoch metrics, sub-epoch times, hyperparameters) under each "
        "model's folder in the Store (needs the tensorboard package; skipped with a warning without it).",
        TypeConverters.toBoolean,
    )
    mlflow_experiment: Param[str] = _param(
        "mlflow_experiment",
        "name of an MLflow experiment to record the search in (a parent run, a nested run per model), "
        "at MLflow's tracking URI; None (default) records nothing. Needs the mlflow extra.",
    )
    sample_weight_column: Param[str] = _param(
        "sample_weight_column",
        "name of a numeric column of per-row weights (>= 0), passed to Keras' fit and evaluate as "
        "sample_weight; None (default): every row weighs 1.",
    )
    reader: Param[str] = _param(
        "reader",
        "how workers read prepared partitions: 'pyarrow' (default) or 'petastorm' (Petastorm's "
        "make_batch_reader; needs the petastorm extra and its environment, see docs/petastorm.md).",
    )

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(
            reader="pyarrow",
            backend=None,
            validation=None,
            num_epochs=1,
            seed=None,
            verbose=1,
            run_id=None,
            tensorboard=True,
            mlflow_experiment=None,
            sample_weight_column=None,
        )

    def getStore(self) -> Store:
        return self.getOrDefault(self.store)  # type: ignore[no-any-return]

    def getBackend(self) -> Backend | None:
        return self.getOrDefault(self.backend)  # type: ignore[no-any-return]

    def getFeatureColumns(self) -> list[str]:
        return self.getOrDefault(self.feature_columns)  # type: ignore[no-any-return]

    def getLabelColumns(self) -> list[str]:
        return self.getOrDefault(self.label_columns)  # type: ignore[no-any-return]

    def getNumEpochs(self) -> int:
        return self.getOrDefault(self.num_epochs)  # type: ignore[no-any-return]

    def getSeed(self) -> int | None:
        return self.getOrDefault(self.seed)  # type: ignore[no-any-return]

    def getReader(self) -> str:
        return self.getOrDefault(self.reader)  # type: ignore[no-any-return]

    def fit_on_prepared_data(self, prepared: Any) -> Any:
        """Train on data already in the Store instead of a DataFrame (no preparation job).

        Parameters
        ----------
        prepared : str or DatasetSpec
            Data prepared by an earlier fit: its fingerprint, its key ``"data/<fingerprint>"`` or its
            :class:`~cerebro_spark.data.spec.DatasetSpec`; or the Store key, path or URL of a Parquet
            directory of numeric or array columns, or a Petastorm dataset written by
            ``materialize_dataset`` (its ``NdarrayCodec`` fields are decoded; this needs Petastorm), read
            with Spark and divided into one partition per worker once: later calls reuse it
            (docs/petastorm.md).

        Returns
        -------
        KerasModel or ModelSelectionModel
            What ``fit`` returns.

        Raises
        ------
        DataError
            If nothing prepared is there, or it was prepared for other columns or another number of
            workers.

        Examples
        --------
        >>> result = GridSearch(...).fit_on_prepared_data("data/0123abcd")  # doctest: +SKIP
        """
        return self.fit(PreparedData(prepared))  # type: ignore[attr-defined]


#: The params that say how a fitted model writes predictions, with their defaults: every estimator and
#: search takes them as keyword arguments and hands them to the models it fits.
PREDICTION_DEFAULTS: dict[str, Any] = {
    "prediction_col": "prediction",
    "probability_col": "probability",
    "raw_prediction_col": "rawPrediction",
    "output_type": "array",
    "task": "auto",
    "inference_batch_size": 1024,
}


class PredictionKwargs(TypedDict, total=False):
    """The keyword arguments of :data:`PREDICTION_DEFAULTS`, typed (``**kwargs: Unpack[PredictionKwargs]``)."""

    prediction_col: str
    probability_col: str
    raw_prediction_col: str
    output_type: str
    task: str
    inference_batch_size: int


_Init = TypeVar("_Init", bound=Callable[..., None])


def takes_prediction_params(init: _Init) -> _Init:
    """Give a constructor ending in ``**prediction: Unpack[PredictionKwargs]`` those keywords with
    their defaults in its signature (``help``, ``inspect``), and refuse any other keyword.

    One list of these six keywords serves every estimator and search.
    """
    signature = inspect.signature(init)
    own = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    shared = [
        inspect.Parameter(
            name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=type(default).__name__
        )
        for name, default in PREDICTION_DEFAULTS.items()
    ]
    known = {p.name for p in [*own, *shared]}

    @functools.wraps(init)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise InvalidParamError(
                f"{type(self).__name__}() got unexpected keyword argument(s) {unknown}. "
                f"It takes: {sorted(known - {'self'})}."
            )
        init(self, *args, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=[*own, *shared])  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def prediction_param_values(instance: Params) -> dict[str, Any]:
    """The values of ``instance``'s prediction params (those of :data:`PREDICTION_DEFAULTS` it has)."""
    return {name: instance.getOrDefault(name) for name in PREDICTION_DEFAULTS if instance.hasParam(name)}


class HasPredictionParams(Params):
    """How a fitted model writes predictions."""

    prediction_col: Param[str] = _param(
        "prediction_col",
        "name of the output column (a model with several outputs gets '<name>_0', '<name>_1', ...).",
        TypeConverters.toString,
    )
    inference_batch_size: Param[int] = _param(
        "inference_batch_size", "rows per predict call in transform (>= 1).", TypeConverters.toInt
    )

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(
            prediction_col=PREDICTION_DEFAULTS["prediction_col"],
            inference_batch_size=PREDICTION_DEFAULTS["inference_batch_size"],
        )


class HasOutputParams(Params):
    """Which columns ``transform`` writes besides ``prediction_col``: set them on an estimator or a
    search (its fitted models get them) or on a fitted model."""

    probability_col: Param[str] = _param(
        "probability_col",
        "classifiers: name of the class-probabilities column ('' for none; default 'probability').",
        TypeConverters.toString,
    )
    raw_prediction_col: Param[str] = _param(
        "raw_prediction_col",
        "classifiers: name of the column holding the model's output as it is, probabilities or logits "
        "('' for none; default 'rawPrediction').",
        TypeConverters.toString,
    )
    output_type: Param[str] = _param(
        "output_type",
        "type of the multi-value output columns: 'array' (array<float>, default) or 'vector' "
        "(pyspark.ml.linalg DenseVector, as Spark ML's classifiers write probabilities).",
        TypeConverters.toString,
    )
    task: Param[str] = _param(
        "task",
        "'auto' (default: an output is a classifier when its compiled loss is a cross-entropy, focal, "
        "hinge or KL loss), 'classification' or 'regression'.",
        TypeConverters.toString,
    )

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(
            **{
                n: PREDICTION_DEFAULTS[n]
                for n in ("probability_col", "raw_prediction_col", "output_type", "task")
            }
        )
