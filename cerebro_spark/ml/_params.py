"""The Params machinery of the Spark ML classes, built from the one table of
:mod:`cerebro_spark.ml._param_table`.

A class declares which Params it has, one line each (``batch_size = param("batch_size")``, the Spark ML
way: Params are class attributes); :class:`TableParams` gives it the rest from the table:

- the defaults (a class may override some: ``_defaults = {"num_models": 27}``);
- a keyword-only constructor listing every Param with its default (``help(GridSearch)``), which refuses
  unknown keywords, and ``setParams`` taking the same keywords;
- ``getX`` and ``setX`` for every Param (``batch_size``: ``getBatchSize``, ``setBatchSize``), unless the
  class writes its own;
- :func:`validate_params`: every constraint, one message template, before any work.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from pyspark.ml.param import Param, Params

from cerebro_spark.errors import CerebroError, InvalidParamError
from cerebro_spark.ml._dataset import PreparedData
from cerebro_spark.ml._param_table import PARAMS, PREDICTION_DEFAULTS, REQUIRED

__all__ = [
    "PREDICTION_DEFAULTS",
    "HasDataParams",
    "HasOutputParams",
    "HasPredictionParams",
    "TableParams",
    "param",
    "prediction_param_values",
    "validate_params",
]


def param(name: str) -> Param[Any]:
    """The Spark ML ``Param`` of table entry ``name``, to declare as a class attribute."""
    spec = PARAMS[name]
    return Param(Params._dummy(), name, spec.doc, typeConverter=spec.converter)


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


class TableParams(Params):
    """Params whose defaults, constructor, accessors and checks come from the table (see the module)."""

    #: Defaults of this class that differ from the table's.
    _defaults: ClassVar[dict[str, Any]] = {}
    #: Params this class inherits but does not use: not constructor keywords.
    _unused_params: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(**self._table_defaults())

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, value in list(vars(cls).items()):
            if isinstance(value, Param) and name in PARAMS:
                _add_accessors(cls, name)
        if "__init__" not in vars(cls):  # a class with state of its own writes its constructor
            cls.__init__ = _constructor(cls)  # type: ignore[method-assign]

    @classmethod
    def _param_names(cls) -> list[str]:
        """The table's Params this class declares (its own and inherited), in the table's order."""
        declared = {n for n in dir(cls) if isinstance(getattr(cls, n, None), Param)}
        return [name for name in PARAMS if name in declared]

    @classmethod
    def _keywords(cls) -> list[str]:
        return [name for name in cls._param_names() if name not in cls._unused_params]

    @classmethod
    def _table_defaults(cls) -> dict[str, Any]:
        defaults = {n: cls._defaults.get(n, PARAMS[n].default) for n in cls._param_names()}
        return {n: v for n, v in defaults.items() if v is not REQUIRED}

    def setParams(self, **kwargs: Any) -> TableParams:  # noqa: N802 (pyspark's name)
        """Set any of the constructor's keyword arguments."""
        _refuse_unknown(type(self), kwargs, type(self)._keywords())
        return self._set(**kwargs)

    def _set(self, **kwargs: Any) -> TableParams:
        try:
            return super()._set(**kwargs)  # type: ignore[no-any-return]
        except TypeError as e:  # a converter's refusal: give it the hierarchy's type and the class
            if isinstance(e, CerebroError):
                raise
            raise InvalidParamError(f"{type(self).__name__}: {e}") from e


def _refuse_unknown(cls: type, kwargs: dict[str, Any], known: list[str]) -> None:
    unknown = sorted(set(kwargs) - set(known))
    if unknown:
        raise InvalidParamError(
            f"{cls.__name__}() got unexpected keyword argument(s) {unknown}. It takes: {sorted(known)}."
        )


def _constructor(cls: type[TableParams]) -> Callable[..., None]:
    """``cls.__init__``: every Param as a keyword-only argument with its default (required ones: None)."""
    keywords = cls._keywords()
    defaults = cls._table_defaults()

    def __init__(self: TableParams, **kwargs: Any) -> None:  # noqa: N807
        _refuse_unknown(type(self), kwargs, type(self)._keywords())
        super(cls, self).__init__()
        self._set(**kwargs)

    self_parameter = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    keyword = inspect.Parameter.KEYWORD_ONLY
    __init__.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [self_parameter]
        + [
            inspect.Parameter(n, keyword, default=defaults.get(n), annotation=PARAMS[n].annotation)
            for n in keywords
        ],
        return_annotation=None,
    )
    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    __init__.__doc__ = f"Every Param of {cls.__name__} as a keyword argument (see the class)."
    return __init__


def _add_accessors(cls: type, name: str) -> None:
    getter, setter = f"get{_camel(name)}", f"set{_camel(name)}"
    doc = PARAMS[name].doc
    if not hasattr(cls, getter):

        def get(self: Params) -> Any:
            return self.getOrDefault(name)

        get.__name__, get.__qualname__ = getter, f"{cls.__qualname__}.{getter}"
        get.__doc__ = f"The value of ``{name}``: {doc}"
        setattr(cls, getter, get)
    if not hasattr(cls, setter):

        def set_(self: TableParams, value: Any) -> Any:
            return self._set(**{name: value})

        set_.__name__, set_.__qualname__ = setter, f"{cls.__qualname__}.{setter}"
        set_.__doc__ = f"Set ``{name}``: {doc}"
        setattr(cls, setter, set_)


def validate_params(instance: Params, names: Iterable[str] | None = None) -> None:
    """Check every Param of ``instance`` that has a constraint in the table (or those in ``names``).

    Raises
    ------
    InvalidParamError
        Naming the param, the class, what was expected and what was received:
        "The 'batch_size' param of KerasEstimator must be an int >= 1. Received: 0."
    """
    wanted = None if names is None else set(names)
    for p in instance.params:
        spec = PARAMS.get(p.name)
        if spec is None or spec.check is None or (wanted is not None and p.name not in wanted):
            continue
        value = instance.getOrDefault(p) if instance.isDefined(p) else None
        expected = spec.check(value)
        if expected is not None:
            missing = " (it is required)" if value is None else ""
            raise InvalidParamError(
                f"The {p.name!r} param of {type(instance).__name__} must be {expected}{missing}. "
                f"Received: {value!r}."
            )
    if all(instance.hasParam(n) and (wanted is None or n in wanted) for n in _OUTPUT_COLUMN_PARAMS):
        _check_distinct_columns(instance)


#: The params naming the columns ``transform`` writes: no two may be the same (``''`` skips one).
_OUTPUT_COLUMN_PARAMS = ("prediction_col", "probability_col", "raw_prediction_col")


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


def prediction_param_values(instance: Params) -> dict[str, Any]:
    """The values of ``instance``'s prediction params (those of :data:`PREDICTION_DEFAULTS` it has)."""
    return {name: instance.getOrDefault(name) for name in PREDICTION_DEFAULTS if instance.hasParam(name)}


class HasDataParams(TableParams):
    """Where the data comes from and where the run lives: shared by the estimator and the searches."""

    store = param("store")
    backend = param("backend")
    feature_columns = param("feature_columns")
    label_columns = param("label_columns")
    validation = param("validation")
    num_epochs = param("num_epochs")
    seed = param("seed")
    verbose = param("verbose")
    run_id = param("run_id")
    tensorboard = param("tensorboard")
    mlflow_experiment = param("mlflow_experiment")
    sample_weight_column = param("sample_weight_column")
    reader = param("reader")

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


class HasPredictionParams(TableParams):
    """How a fitted model writes predictions."""

    prediction_col = param("prediction_col")
    inference_batch_size = param("inference_batch_size")


class HasOutputParams(TableParams):
    """Which columns ``transform`` writes besides ``prediction_col``: set them on an estimator or a
    search (its fitted models get them) or on a fitted model."""

    probability_col = param("probability_col")
    raw_prediction_col = param("raw_prediction_col")
    output_type = param("output_type")
    task = param("task")
