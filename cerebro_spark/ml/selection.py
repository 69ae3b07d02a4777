"""ModelSelectionModel: what a search's ``fit`` returns."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyspark.ml import Model
from pyspark.sql import DataFrame

from cerebro_spark.driver import ModelRecord, SearchResult
from cerebro_spark.errors import TrainingError
from cerebro_spark.ml._params import HasOutputParams, HasPredictionParams
from cerebro_spark.ml.model import KerasModel
from cerebro_spark.store.base import Store
from cerebro_spark.training.model_spec import ModelSpec

if TYPE_CHECKING:
    import keras
    import pandas as pd
    from matplotlib.figure import Figure
    from pyspark.sql import SparkSession


class ModelSelectionModel(Model, HasPredictionParams, HasOutputParams):
    """The result of a model selection: every model's history and the best model.

    The best model is the one whose best epoch has the best ``evaluation_metric`` (ties go to the
    model added first); its weights are those of that epoch. ``transform`` uses the best model.

    Examples
    --------
    >>> result = search.fit(train_df)  # doctest: +SKIP
    >>> result.leaderboard()  # doctest: +SKIP
    >>> result.get_best_model().transform(test_df)  # doctest: +SKIP
    """

    def __init__(self) -> None:
        super().__init__()
        self.result: SearchResult | None = None
        self._specs: dict[str, ModelSpec] = {}
        self._store: Store | None = None
        self._owner: Any = None
        self._loaded: dict[str, KerasModel] = {}

    @classmethod
    def _create(
        cls, result: SearchResult, specs: dict[str, ModelSpec], store: Store, owner: Any
    ) -> ModelSelectionModel:
        instance = cls()
        instance._set(
            prediction_col=owner.getOrDefault(owner.prediction_col),
            inference_batch_size=owner.getOrDefault(owner.inference_batch_size),
        )
        instance.result, instance._specs, instance._store, instance._owner = result, specs, store, owner
        return instance

    @property
    def run_id(self) -> str:
        return self._result().run_id

    @property
    def best_model_id(self) -> str:
        best = self._result().best_model_id
        if best is None:
            raise TrainingError("No model of this search finished an epoch: there is no best model.")
        return best

    def _result(self) -> SearchResult:
        if self.result is None:
            raise TrainingError("This ModelSelectionModel holds no search result.")
        return self.result

    def _record(self, model_id: str) -> ModelRecord:
        models = self._result().models
        if model_id not in models:
            raise KeyError(f"No model {model_id!r} in run {self.run_id!r}. Models: {list(models)}.")
        return models[model_id]

    def get_model(self, model_id: str) -> KerasModel:
        """The model ``model_id`` with the weights of its best epoch."""
        if model_id not in self._loaded:
            record = self._record(model_id)
            if record.best_version is None or self._store is None:
                raise TrainingError(
                    f"Model {model_id!r} finished no epoch ({record.status}: {record.reason})."
                )
            self._loaded[model_id] = KerasModel.from_store(
                self._store,
                self._specs[model_id],
                record.best_version,
                self._owner,
                history=record.metric_series(),
            )
        return self._loaded[model_id]

    def get_best_model(self) -> KerasModel:
        """The best model (at its best epoch) as a :class:`KerasModel`."""
        return self.get_model(self.best_model_id)

    def get_all_models(self) -> dict[str, KerasModel]:
        """Every model that finished at least one epoch, at its best epoch, by model id."""
        return {
            m.model_id: self.get_model(m.model_id)
            for m in self._result().models.values()
            if m.best_version is not None
        }

    def get_history(self) -> dict[str, list[float]]:
        """The best model's Keras-style history (metric -> one value per epoch)."""
        return self._record(self.best_model_id).metric_series()

    def get_all_model_history(self) -> dict[str, dict[str, list[float]]]:
        """Every model's Keras-style history, by model id."""
        return {m.model_id: m.metric_series() for m in self._result().models.values()}

    def get_all_model_params(self) -> dict[str, dict[str, Any]]:
        """The configuration of every model, by model id."""
        return {m.model_id: dict(m.params) for m in self._result().models.values()}

    def leaderboard(self) -> pd.DataFrame:
        """One row per model, best first: id, status, best epoch, its metrics and the parameters."""
        from cerebro_spark.ml.history import leaderboard_frame

        return leaderboard_frame(self._result())

    def get_history_df(self) -> pd.DataFrame:
        """One row per (model, epoch): ``model_id``, ``epoch``, ``status``, ``param_*``, every
        training and validation metric, rows, seconds and ``is_best_epoch``.

        Examples
        --------
        >>> result.get_history_df().query("model_id == 'm0000'")  # doctest: +SKIP
        """
        from cerebro_spark.ml.history import history_frame

        return history_frame(self._result())

    def get_history_spark_df(self, spark: SparkSession) -> DataFrame:
        """The rows of :meth:`get_history_df` as a Spark DataFrame created by ``spark``."""
        from cerebro_spark.ml.history import history_spark_frame

        return history_spark_frame(self._result(), spark)

    def plot(self, metric: str | None = None) -> Figure:
        """A matplotlib Figure: every model's learning curve of ``metric`` (default: the evaluation
        metric; the best model highlighted) and the schedule of units on workers."""
        from cerebro_spark.ml.report import plot

        return plot(self._result(), metric)

    def report(self, path: str) -> str:
        """Write a self-contained HTML report (leaderboard, curves, schedule, parameters) to the local
        file ``path``; returns ``path``."""
        from cerebro_spark.ml.report import write_report

        return write_report(self._result(), path)

    def keras(self) -> keras.Model:
        """The best model as a ``keras.Model``."""
        return self.get_best_model().keras()

    def _transform(self, dataset: DataFrame) -> DataFrame:
        best = self.get_best_model().copy()
        best._set(
            prediction_col=self.getOrDefault(self.prediction_col),
            inference_batch_size=self.getOrDefault(self.inference_batch_size),
            **{p.name: self.getOrDefault(p.name) for p in HasOutputParams().params},
        )
        return best.transform(dataset)
