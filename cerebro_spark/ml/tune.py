"""GridSearch and RandomSearch: model selection as ``pyspark.ml`` Estimators."""

from __future__ import annotations

from typing import Any

from pyspark import keyword_only
from pyspark.ml import Estimator
from pyspark.ml.param import Param, TypeConverters
from pyspark.sql import DataFrame

from cerebro_spark.errors import InvalidParamError
from cerebro_spark.ml._fit import run_search
from cerebro_spark.ml._params import HasDataParams, HasPredictionParams, _param, validate_params
from cerebro_spark.ml.selection import ModelSelectionModel
from cerebro_spark.search import (
    GridSearchAlgorithm,
    RandomSearchAlgorithm,
    SearchAlgorithm,
    Trial,
    resolve_mode,
    validate_space,
)


class _ModelSelection(Estimator, HasDataParams, HasPredictionParams):
    """What GridSearch and RandomSearch share: every param but the algorithm's own."""

    estimator_gen_fn: Param[Any] = _param(
        "estimator_gen_fn", "function of a configuration (dict) returning a KerasEstimator (required)."
    )
    search_space: Param[dict[str, Any]] = _param(
        "search_space", "dict of name -> hp_choice/hp_uniform/... dimension or constant (required)."
    )
    evaluation_metric: Param[str] = _param(
        "evaluation_metric", "the history metric that ranks models, e.g. 'val_loss' or 'val_accuracy'.",
        TypeConverters.toString,
    )  # fmt: skip
    mode: Param[str] = _param(
        "mode",
        "'min' or 'max' for the evaluation metric; 'auto' infers it from the name.",
        TypeConverters.toString,
    )

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(estimator_gen_fn=None, search_space=None, evaluation_metric="val_loss", mode="auto")

    @keyword_only
    def setParams(self, **kwargs: Any) -> _ModelSelection:
        """Set any of the constructor's keyword arguments."""
        return self._set(**kwargs)  # type: ignore[no-any-return]

    def _algorithm(self) -> SearchAlgorithm:
        raise NotImplementedError

    def _fit(self, dataset: DataFrame) -> ModelSelectionModel:
        validate_params(self)
        gen_fn = self.getOrDefault(self.estimator_gen_fn)
        if not callable(gen_fn):
            raise InvalidParamError(
                f"The 'estimator_gen_fn' param of {type(self).__name__} must be a function of a configuration "
                f"returning a KerasEstimator. Received: {gen_fn!r}."
            )
        metric = self.getOrDefault(self.evaluation_metric)
        mode = resolve_mode(metric, self.getOrDefault(self.mode))
        outcome = run_search(
            self,
            dataset,
            self._algorithm(),
            lambda trial: gen_fn(dict(trial.params)),
            metric=metric,
            mode=mode,
        )
        return ModelSelectionModel._create(outcome.result, outcome.specs, outcome.store, self)

    def _space(self) -> dict[str, Any]:
        return validate_space(self.getOrDefault(self.search_space) or {})


class GridSearch(_ModelSelection):
    """Train every configuration of a grid with Model Hopper Parallelism; keep the best.

    Parameters
    ----------
    estimator_gen_fn : callable
        ``estimator_gen_fn(params) -> KerasEstimator`` for one configuration.
    search_space : dict
        Name -> ``hp_choice([...])`` (or a ``q`` dimension, or a constant); the grid is their product.
    num_epochs : int, default 1
        Epochs per configuration.
    evaluation_metric : str, default 'val_loss'
        Ranks models; ``mode`` says whether smaller or larger is better ('auto' infers it).
    feature_columns, label_columns, store, backend, validation, seed, verbose, run_id
        See ``KerasEstimator``.

    Examples
    --------
    >>> search = GridSearch(backend=backend, store=store, estimator_gen_fn=estimator_gen_fn,  # doctest: +SKIP
    ...                     search_space={"lr": hp_choice([1e-2, 1e-3])}, num_epochs=5,
    ...                     evaluation_metric="val_accuracy", validation=0.2,
    ...                     feature_columns=["features"], label_columns=["label"], seed=7)
    >>> result = search.fit(train_df)  # doctest: +SKIP
    """

    @keyword_only
    def __init__(
        self,
        *,
        estimator_gen_fn: Any = None,
        search_space: dict[str, Any] | None = None,
        num_epochs: int = 1,
        evaluation_metric: str = "val_loss",
        mode: str = "auto",
        feature_columns: list[str] | None = None,
        label_columns: list[str] | None = None,
        store: Any = None,
        backend: Any = None,
        validation: Any = None,
        seed: int | None = None,
        verbose: int = 1,
        run_id: str | None = None,
        tensorboard: bool = True,
        mlflow_experiment: str | None = None,
        reader: str = "pyarrow",
        prediction_col: str = "prediction",
        inference_batch_size: int = 1024,
    ) -> None:
        super().__init__()
        self.setParams(**self._input_kwargs)

    def _algorithm(self) -> SearchAlgorithm:
        return GridSearchAlgorithm(self._space(), self.getNumEpochs())


class RandomSearch(_ModelSelection):
    """Train ``num_models`` configurations sampled from the search space; keep the best.

    Each dimension draws from its own stream of one seeded generator, so dimensions are independent
    and the same seed gives the same configurations. Other parameters as :class:`GridSearch`.
    """

    num_models: Param[int] = _param(
        "num_models", "number of configurations to sample (>= 1).", TypeConverters.toInt
    )

    @keyword_only
    def __init__(
        self,
        *,
        estimator_gen_fn: Any = None,
        search_space: dict[str, Any] | None = None,
        num_models: int = 10,
        num_epochs: int = 1,
        evaluation_metric: str = "val_loss",
        mode: str = "auto",
        feature_columns: list[str] | None = None,
        label_columns: list[str] | None = None,
        store: Any = None,
        backend: Any = None,
        validation: Any = None,
        seed: int | None = None,
        verbose: int = 1,
        run_id: str | None = None,
        tensorboard: bool = True,
        mlflow_experiment: str | None = None,
        reader: str = "pyarrow",
        prediction_col: str = "prediction",
        inference_batch_size: int = 1024,
    ) -> None:
        super().__init__()
        self._setDefault(num_models=10)
        self.setParams(**self._input_kwargs)

    def _algorithm(self) -> SearchAlgorithm:
        return RandomSearchAlgorithm(
            self._space(), self.getOrDefault(self.num_models), self.getNumEpochs(), seed=self.getSeed()
        )


__all__ = ["GridSearch", "ModelSelectionModel", "RandomSearch", "Trial"]
