"""ModelSelectionModel: what a search's ``fit`` returns."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pyspark.ml import Model
from pyspark.sql import DataFrame

from cerebro_spark.driver import ModelRecord, SearchResult
from cerebro_spark.driver.control import ResumeModel
from cerebro_spark.driver.records import EpochRecord, UnitRecord
from cerebro_spark.errors import (
    InvalidParamError,
    ModelNotFoundError,
    PersistenceError,
    StoreError,
    TrainingError,
)
from cerebro_spark.ml._params import HasOutputParams, HasPredictionParams, prediction_param_values
from cerebro_spark.ml._persistence import (
    Persistable,
    SavedFiles,
    decode_value,
    digest,
    encode_value,
    read_trusted,
)
from cerebro_spark.ml.model import KerasModel
from cerebro_spark.observers.history import history_frame, history_spark_frame, leaderboard_frame
from cerebro_spark.observers.report import plot, write_report
from cerebro_spark.store.base import Store
from cerebro_spark.store.fs import restore_store
from cerebro_spark.training.model_spec import ModelSpec

if TYPE_CHECKING:
    import keras
    import pandas as pd
    from matplotlib.figure import Figure
    from pyspark.sql import SparkSession


class ModelSelectionModel(Model, HasPredictionParams, HasOutputParams, Persistable):
    """The result of a model selection: every model's history and the best model.

    The best model is the one whose best epoch has the best ``evaluation_metric`` (ties go to the
    model added first); its weights are those of that epoch. ``transform`` uses the best model.

    Examples
    --------
    >>> result = search.fit(train_df)  # doctest: +SKIP
    >>> result.leaderboard()  # doctest: +SKIP
    >>> result.get_best_model().transform(test_df)  # doctest: +SKIP
    >>> result.write().overwrite().save("models/selection")  # doctest: +SKIP
    >>> ModelSelectionModel.load("models/selection").transform(test_df)  # doctest: +SKIP

    Saving keeps the records of every model (leaderboard, histories, plots) and the best model's
    ``.keras`` file; every model's with ``write().option("saveAllModels", "true")`` or, inside a
    Pipeline, ``save_all_models = True``. ``get_model`` of a model that was not saved reads it from
    the run's Store while that is reachable (see docs/persistence.md).
    """

    #: Whether ``save`` writes every model's ``.keras`` file (default: only the best model's).
    save_all_models: bool = False

    def __init__(self) -> None:
        super().__init__()
        self.result: SearchResult | None = None
        self._specs: dict[str, ModelSpec] = {}
        self._store: Store | None = None
        self._owner: Any = None
        self._loaded: dict[str, KerasModel] = {}
        self._store_url: str | None = None  # a loaded instance opens its run's Store when needed

    @classmethod
    def _create(
        cls, result: SearchResult, specs: dict[str, ModelSpec], store: Store, owner: Any
    ) -> ModelSelectionModel:
        instance = cls()
        instance._set(**prediction_param_values(owner))
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
            raise ModelNotFoundError(f"No model {model_id!r} in run {self.run_id!r}. Models: {list(models)}.")
        return models[model_id]

    def get_model(self, model_id: str) -> KerasModel:
        """The model ``model_id`` with the weights of its best epoch."""
        if model_id not in self._loaded:
            record = self._record(model_id)
            if record.best_version is None:
                raise TrainingError(
                    f"Model {model_id!r} finished no epoch ({record.status}: {record.reason})."
                )
            if self._store is None:  # a loaded instance: the model comes from the run's Store, if reachable
                series = record.metric_series()
                self._loaded[model_id] = self._model_from_run_store(model_id, record.best_version, series)
                return self._loaded[model_id]
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
        return leaderboard_frame(self._result())

    def get_history_df(self) -> pd.DataFrame:
        """One row per (model, epoch): ``model_id``, ``epoch``, ``status``, ``param_*``, every
        training and validation metric, rows, seconds and ``is_best_epoch``.

        Examples
        --------
        >>> result.get_history_df().query("model_id == 'm0000'")  # doctest: +SKIP
        """
        return history_frame(self._result())

    def get_history_spark_df(self, spark: SparkSession) -> DataFrame:
        """The rows of :meth:`get_history_df` as a Spark DataFrame created by ``spark``."""
        return history_spark_frame(self._result(), spark)

    def plot(self, metric: str | None = None) -> Figure:
        """A matplotlib Figure: every model's learning curve of ``metric`` (default: the evaluation
        metric; the best model highlighted) and the schedule of units on workers."""
        return plot(self._result(), metric)

    def report(self, path: str) -> str:
        """Write a self-contained HTML report (leaderboard, curves, schedule, parameters) to the local
        file ``path``; returns ``path``."""
        return write_report(self._result(), path)

    def continue_training(self, models: Sequence[str] | None = None, epochs: int = 1) -> ModelSelectionModel:
        """Train ``models`` ``epochs`` more epochs each, on the run's prepared data, from their latest
        checkpoints; return the updated selection (the same run id; histories go on from the old ones).

        The run is resumed in the Store (nothing is prepared or trained again) with one resume
        command per model; the other models keep what they have. This model is left as it was; its
        prediction params (``prediction_col``, ``probability_col``...) go to the new one.

        Parameters
        ----------
        models : sequence of str, optional
            Model ids (e.g. the top of :meth:`leaderboard`); default: the best model.
        epochs : int, default 1
            More epochs for each model (>= 1).

        Returns
        -------
        ModelSelectionModel
            The selection after the extra epochs; the best model is chosen again over all models.

        Raises
        ------
        InvalidParamError
            If a model id is unknown or failed, or ``epochs`` is not an int >= 1.

        Examples
        --------
        >>> top_3 = list(result.leaderboard().model_id[:3])  # doctest: +SKIP
        >>> result = result.continue_training(models=top_3, epochs=5)  # doctest: +SKIP
        """
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise InvalidParamError(f"epochs must be an int >= 1. Received: epochs={epochs!r}")
        chosen = [self.best_model_id] if models is None else list(models)
        if isinstance(models, str) or not chosen:
            raise InvalidParamError(
                f"models must be a non-empty list of model ids. Received: models={models!r}"
            )
        for model_id in chosen:
            record = self._result().models.get(model_id)
            if record is None or record.status == "failed":
                raise InvalidParamError(
                    f"continue_training can train models of run {self.run_id!r} that did not fail: "
                    f"{[m.model_id for m in self._result().models.values() if m.status != 'failed']}. "
                    f"Received: {model_id!r}" + ("" if record is None else " (failed)")
                )
        continue_run = getattr(self._owner, "_continue_run", None)
        if continue_run is None:
            raise TrainingError(
                "continue_training needs the search that made this model (GridSearch, RandomSearch, ...); "
                f"this one was made by {type(self._owner).__name__}."
            )
        commands = [ResumeModel(m, epochs=self._record(m).epochs + epochs) for m in chosen]
        return continue_run(self.run_id, commands, prediction_param_values(self))  # type: ignore[no-any-return]

    def keras(self) -> keras.Model:
        """The best model as a ``keras.Model``."""
        return self.get_best_model().keras()

    def _transform(self, dataset: DataFrame) -> DataFrame:
        best = self.get_best_model().copy()
        best._set(**prediction_param_values(self))
        return best.transform(dataset)

    def _save_extra(self, files: SavedFiles, options: dict[str, str]) -> dict[str, Any]:
        """Write the search's records and the best model (every model with ``saveAllModels``)."""
        result = self._result()
        save_all = options.get("saveallmodels", str(self.save_all_models)).lower() == "true"
        ids = [m.model_id for m in result.models.values() if m.best_version is not None]
        saved = ids if save_all else [i for i in ids if i == result.best_model_id]
        custom_files: dict[str, str] = {}
        specs = {}
        for model_id, spec in self._specs.items():
            fields = {
                f.name: getattr(spec, f.name)
                for f in dataclasses.fields(spec)
                if f.name not in ("custom_objects", "params")
            }
            if spec.custom_objects:
                name = f"custom_objects/{digest(spec.custom_objects)}.pkl"
                if name not in custom_files.values():
                    files.write_bytes(name, spec.custom_objects)
                custom_files[model_id] = name
            specs[model_id] = {**fields, "custom_objects": custom_files.get(model_id)}
        models = {}
        for record in result.models.values():
            entry = {
                f.name: getattr(record, f.name)
                for f in dataclasses.fields(record)
                if f.name not in ("params", "history")
            }
            entry["history"] = [h.to_dict() for h in record.history]
            key = f"records/{record.model_id}-params"
            entry["params"] = encode_value(
                record.params, key, files, f"the params of model {record.model_id!r}"
            )
            models[record.model_id] = entry
        document = {
            f.name: getattr(result, f.name)
            for f in dataclasses.fields(result)
            if f.name not in ("models", "units")
        }
        document.update(models=models, units=[u.to_dict() for u in result.units], specs=specs)
        files.write_json("result.json", document)
        saved_models = {
            model_id: self.get_model(model_id)._write_files(files, f"models/{model_id}/")
            for model_id in saved
        }
        owner = self._owner
        return {
            "run_id": result.run_id,
            "store_url": self._store.url if self._store is not None else self._store_url,
            "feature_columns": owner.getOrDefault(owner.feature_columns),
            "label_columns": owner.getOrDefault(owner.label_columns),
            "saved_models": saved_models,
        }

    def _load_extra(self, files: SavedFiles, extra: dict[str, Any], saved_with: dict[str, str]) -> None:
        """Restore what :meth:`_save_extra` wrote."""
        document = files.read_json("result.json")
        models = {}
        for model_id, entry in document.pop("models").items():
            params = decode_value(entry.pop("params"), files, f"the params of model {model_id!r}", saved_with)
            history = [EpochRecord(**_known(EpochRecord, h)) for h in entry.pop("history")]
            models[model_id] = ModelRecord(**_known(ModelRecord, entry), params=params, history=history)
        units = [UnitRecord(**_known(UnitRecord, u)) for u in document.pop("units")]
        specs = {}
        for model_id, fields in document.pop("specs").items():
            custom_file = fields.pop("custom_objects")
            custom = b""
            if custom_file:  # unpickled only when a model is read from the run's Store: trusted now or never
                custom = read_trusted(files, custom_file, f"the custom objects of model {model_id!r}")
            specs[model_id] = ModelSpec(
                **_known(ModelSpec, fields), custom_objects=custom, params=models[model_id].params
            )
        self.result = SearchResult(**_known(SearchResult, document), models=models, units=units)
        self._specs = specs
        self._store, self._store_url = None, extra.get("store_url")
        owner = KerasModel()
        shared = {
            p.name: self.getOrDefault(p) for p in self.params if owner.hasParam(p.name) and self.isDefined(p)
        }
        owner._set(feature_columns=extra["feature_columns"], label_columns=extra["label_columns"], **shared)
        self._owner = owner
        self._loaded = {}
        for model_id, model_extra in extra.get("saved_models", {}).items():
            model = owner.copy()
            model._load_extra(files, model_extra, saved_with)
            self._loaded[model_id] = model

    def _model_from_run_store(
        self, model_id: str, version: int, history: dict[str, list[float]]
    ) -> KerasModel:
        """Model ``model_id`` at checkpoint ``version`` from the run's Store, or a clear error when that fails."""
        try:
            if self._store is None and self._store_url:  # opened without I/O: a missing Store is not created
                self._store = restore_store(self._store_url, {})
            if self._store is None:
                raise StoreError("the Store of the run is not known")
            return KerasModel.from_store(
                self._store, self._specs[model_id], version, self._owner, history=history
            )
        except (StoreError, OSError) as e:
            saved = sorted(self._loaded)
            raise PersistenceError(
                f"Model {model_id!r} of run {self.run_id!r} is not saved with this ModelSelectionModel (saved: "
                f"{saved}; save every model with write().option('saveAllModels', 'true')), and it cannot be "
                f"read from the run's Store {self._store_url!r}: {e}"
            ) from e


def _known(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``values`` that are fields of dataclass ``cls`` (newer saves may add fields)."""
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    return {
        k: v
        for k, v in values.items()
        if k in names and k not in ("params", "history", "models", "units", "custom_objects")
    }
