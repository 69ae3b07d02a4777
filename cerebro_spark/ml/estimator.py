"""KerasEstimator: one Keras model as a ``pyspark.ml`` Estimator, trained with MOP."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from pyspark.ml import Estimator
from pyspark.ml.param import Param
from pyspark.sql import DataFrame

from cerebro_spark.errors import InvalidParamError
from cerebro_spark.ml._fit import run_search
from cerebro_spark.ml._params import (
    HasDataParams,
    HasOutputParams,
    HasPredictionParams,
    param,
    validate_params,
)
from cerebro_spark.ml._persistence import Persistable
from cerebro_spark.ml.model import KerasModel
from cerebro_spark.search import FixedTrialsAlgorithm, SingleTrialAlgorithm


class KerasEstimator(Estimator, HasDataParams, HasPredictionParams, HasOutputParams, Persistable):
    """Train a Keras 3 model on a Spark DataFrame with Model Hopper Parallelism.

    ``fit(df)`` prepares the data once into the Store (one partition per worker), trains the model
    for ``num_epochs`` epochs, each a pass over every worker's partition, and returns a
    :class:`~cerebro_spark.ml.model.KerasModel` holding the weights after the last epoch.
    Inside a search (``GridSearch``...), ``estimator_gen_fn`` returns one KerasEstimator per
    configuration; then only its model, optimizer, loss, metrics, batch size and custom objects
    are used, and the search's data and prediction params apply.

    Every param also has a getter and a setter, as in Spark ML: ``getBatchSize()``,
    ``setBatchSize(64)``, ``getFeatureColumns()``... (``setParams(**kwargs)`` sets several).

    Parameters
    ----------
    model : keras.Model
        A built Keras model (with ``keras.Input``), compiled or not.
    optimizer : keras.optimizers.Optimizer or str, optional
        The optimizer (copied from its config for each training run); default: the model's own if
        compiled, else required.
    loss : str, callable, list or dict, optional
        Keras loss; default: the compiled model's.
    metrics : list, optional
        Keras metrics, e.g. ``["accuracy"]``.
    weighted_metrics : list, optional
        Keras metrics weighted by ``sample_weight_column`` (Keras' ``compile(weighted_metrics=...)``);
        one also in ``metrics`` is reported as ``weighted_<name>`` (``val_weighted_<name>``).
    loss_weights : list or dict, optional
        Weights of each output's loss (several outputs).
    batch_size : int, default 32
        Rows per training step.
    custom_objects : dict, optional
        Custom layers, losses or metrics needed to load the model on the workers.
    feature_columns, label_columns : list of str
        One column per model input and per model output.
    store, backend, validation, num_epochs, seed, verbose, run_id, tensorboard, mlflow_experiment, reader
        See :class:`~cerebro_spark.ml._params.HasDataParams`.
    sample_weight_column : str, optional
        A numeric column of per-row weights, passed to Keras' ``fit`` and ``evaluate`` as ``sample_weight``.
    prediction_col : str, default 'prediction'
        Column of the fitted model's predictions (a class index for a classifier).
    probability_col : str, default 'probability'
        Classifiers: column of class probabilities; ``''`` for none.
    raw_prediction_col : str, default 'rawPrediction'
        Classifiers: column of the model's output as it is; ``''`` for none.
    output_type : {'array', 'vector'}, default 'array'
        Type of the multi-value output columns.
    task : {'auto', 'classification', 'regression'}, default 'auto'
        Whether an output is a classifier; 'auto' decides by its loss.
    inference_batch_size : int, default 1024
        Rows per predict call in ``transform``.

        These six go to the fitted :class:`~cerebro_spark.ml.model.KerasModel` (see docs/columns.md).

    Examples
    --------
    >>> est = KerasEstimator(model=model, optimizer=keras.optimizers.Adam(1e-3),  # doctest: +SKIP
    ...                      loss="binary_crossentropy", metrics=["accuracy"], batch_size=64,
    ...                      feature_columns=["features"], label_columns=["label"],
    ...                      store=Store.create("store"), validation=0.2, num_epochs=3)
    >>> keras_model = est.fit(train_df)  # doctest: +SKIP
    >>> keras_model.transform(test_df).select("prediction").show()  # doctest: +SKIP
    >>> est.write().overwrite().save("models/estimator")  # doctest: +SKIP
    """

    model = param("model")
    optimizer = param("optimizer")
    loss = param("loss")
    metrics = param("metrics")
    weighted_metrics = param("weighted_metrics")
    loss_weights = param("loss_weights")
    batch_size = param("batch_size")
    custom_objects = param("custom_objects")

    def validate_model_params(self) -> None:
        """Check the model-side params (what a search uses of this estimator)."""
        validate_params(self, ["batch_size", "weighted_metrics"])
        import keras

        model = self.getModel()
        if not isinstance(model, keras.Model):
            raise InvalidParamError(
                f"The 'model' param of KerasEstimator must be a keras.Model. Received: {type(model).__name__}."
            )
        if not model.built:
            raise InvalidParamError(
                "The 'model' param of KerasEstimator must be a built model (start it with keras.Input(shape)). "
                f"Received: the unbuilt model {model.name!r}."
            )
        if self.getOrDefault(self.loss) is None and not model.compiled:
            raise InvalidParamError(
                "KerasEstimator needs a loss: set the 'loss' param or pass a compiled model. Received: loss=None."
            )

    def fitMultiple(  # noqa: N802 (pyspark's name)
        self,
        dataset: DataFrame,
        paramMaps: Sequence[dict[Param[Any], Any]],  # noqa: N803
    ) -> Iterator[tuple[int, KerasModel]]:
        """Train one model per param map, all together with MOP on data prepared once.

        This is the hook ``pyspark.ml.tuning.CrossValidator`` and ``TrainValidationSplit`` call, so a
        ``ParamGridBuilder`` grid over a KerasEstimator trains as one model selection. The data params
        (store, backend, columns, validation, seed, run id) cannot vary between param maps.

        Returns
        -------
        iterator of (int, KerasModel)
            Thread-safe, as pyspark requires; the training runs on the first ``next``.
        """
        maps = [dict(m) for m in paramMaps]
        return _ModelsInOrder(lambda: fit_param_maps(self, dataset, maps))

    def _fit(self, dataset: DataFrame) -> KerasModel:
        validate_params(self)
        self.validate_model_params()
        return fit_single_estimator(self, dataset)


def fit_single_estimator(est: KerasEstimator, df: DataFrame) -> KerasModel:
    """``KerasEstimator.fit``: a search of one configuration; returns the model after its last epoch."""
    validation = est.getOrDefault(est.validation)
    metric = "val_loss" if validation not in (None, 0, 0.0) else "loss"
    outcome = run_search(
        est, df, SingleTrialAlgorithm(est.getNumEpochs()), lambda trial: est, metric=metric, mode="min"
    )
    record = next(iter(outcome.result.models.values()))
    spec = outcome.specs[record.model_id]
    return KerasModel.from_store(outcome.store, spec, record.version, est, history=record.metric_series())


#: Params that decide the prepared data and the run: the same for every param map of fitMultiple.
SHARED_PARAMS = (
    "store",
    "backend",
    "feature_columns",
    "label_columns",
    "validation",
    "seed",
    "run_id",
    "tensorboard",
    "mlflow_experiment",
    "sample_weight_column",
    "reader",
)


def fit_param_maps(
    est: KerasEstimator, df: DataFrame, param_maps: Sequence[dict[Any, Any]]
) -> list[KerasModel]:
    """``KerasEstimator.fitMultiple``: one model per param map, all trained together with MOP on data
    prepared once; returns the models (after their last epoch) in the order of ``param_maps``."""
    for param_map in param_maps:
        varying = sorted(p.name for p in param_map if p.name in SHARED_PARAMS)
        if varying:
            raise InvalidParamError(
                f"fitMultiple trains every param map on the same prepared data and run, so {varying} "
                f"cannot vary between param maps. Received a param map setting {varying}."
            )
    estimators = [est.copy(dict(param_map)) for param_map in param_maps]
    for copy in estimators:
        validate_params(copy)
        copy.validate_model_params()
    configs = [{p.name: _describe(v) for p, v in param_map.items()} for param_map in param_maps]
    algorithm = FixedTrialsAlgorithm(configs, [e.getNumEpochs() for e in estimators])
    by_id = {t.model_id: e for t, e in zip(algorithm.initial_trials(), estimators, strict=True)}
    metric = "val_loss" if est.getOrDefault(est.validation) not in (None, 0) else "loss"
    outcome = run_search(est, df, algorithm, lambda trial: by_id[trial.model_id], metric=metric, mode="min")
    return [
        KerasModel.from_store(
            outcome.store,
            outcome.specs[model_id],
            record.version,
            by_id[model_id],
            history=record.metric_series(),
        )
        for model_id, record in outcome.result.models.items()
    ]


def _describe(value: Any) -> Any:
    """A param value as a run record can show it (optimizers and models by their class name)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_describe(v) for v in value]
    return type(value).__name__


def estimator_of(gen_fn: Callable[[dict[str, Any]], Any], params: Mapping[str, Any]) -> KerasEstimator:
    """What a search's ``estimator_gen_fn`` returns for the configuration ``params``: a KerasEstimator,
    else an error naming what it returned."""
    est = gen_fn(dict(params))
    if not isinstance(est, KerasEstimator):
        raise InvalidParamError(
            f"estimator_gen_fn must return a KerasEstimator. Received: {type(est).__name__} "
            f"for the configuration {dict(params)!r}."
        )
    return est


class _ModelsInOrder:
    """A thread-safe iterator of (index, model) that trains every model on the first ``next``."""

    def __init__(self, fit_all: Callable[[], list[KerasModel]]) -> None:
        self._fit_all = fit_all
        self._models: list[KerasModel] | None = None
        self._next = 0
        self._lock = threading.Lock()

    def __iter__(self) -> _ModelsInOrder:
        return self

    def __next__(self) -> tuple[int, KerasModel]:
        with self._lock:
            if self._models is None:
                self._models = self._fit_all()
            if self._next >= len(self._models):
                raise StopIteration
            index, self._next = self._next, self._next + 1
            return index, self._models[index]
