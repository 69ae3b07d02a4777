"""KerasModel: a trained Keras model as a ``pyspark.ml`` Transformer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pyspark.ml import Model
from pyspark.sql import DataFrame

from cerebro_spark.backend.session import spark_handle
from cerebro_spark.data.spec import match_columns
from cerebro_spark.ml._inference import input_columns, plan_outputs, predict_columns, predict_local
from cerebro_spark.ml._model_io import load_trained_model
from cerebro_spark.ml._params import (
    HasOutputParams,
    HasPredictionParams,
    param,
    prediction_param_values,
    validate_params,
)
from cerebro_spark.ml._persistence import (
    Persistable,
    SavedFiles,
    decode_value,
    encode_value,
    read_trusted,
    unpickle,
)
from cerebro_spark.store.base import Store
from cerebro_spark.training.io_mapping import input_names
from cerebro_spark.training.keras_io import dump_custom_objects, model_from_bytes, model_to_bytes
from cerebro_spark.training.model_spec import ModelSpec

if TYPE_CHECKING:
    import keras

    from cerebro_spark.ml.estimator import KerasEstimator


class KerasModel(Model, HasPredictionParams, HasOutputParams, Persistable):
    """A trained Keras model. ``transform(df)`` adds the prediction column(s), computed in batches; ``df``
    is a Spark DataFrame, or a pandas DataFrame or pyarrow Table (predicted on the driver, no Spark).

    ``transform`` is vectorized (Arrow batches), loads the model once per Python worker and predicts
    ``inference_batch_size`` rows per call; nothing is collected to the driver. A regression output
    gives ``prediction_col``; a classifier output (``task``) gives ``prediction_col`` (class index),
    ``probability_col`` and ``raw_prediction_col``. See docs/columns.md.

    Attributes
    ----------
    history : dict of str to list of float
        Keras-style history: one value per epoch for each training (``loss``...) and validation
        (``val_loss``...) metric.

    Examples
    --------
    >>> keras_model = estimator.fit(train_df)  # doctest: +SKIP
    >>> keras_model.transform(test_df).select("label", "prediction").show(3)  # doctest: +SKIP
    >>> keras_model.keras().summary()  # doctest: +SKIP
    >>> keras_model.write().overwrite().save("models/mlp")  # doctest: +SKIP
    >>> KerasModel.load("models/mlp").transform(test_df)  # doctest: +SKIP
    """

    feature_columns = param("feature_columns")
    label_columns = param("label_columns")

    def __init__(self) -> None:
        super().__init__()
        self._model_bytes: bytes = b""
        self._custom_objects: bytes = b""
        self._keras: keras.Model | None = None
        self.history: dict[str, list[float]] = {}
        self.params_used: dict[str, Any] = {}

    @classmethod
    def from_keras(
        cls,
        model: keras.Model,
        *,
        feature_columns: list[str],
        label_columns: list[str] | None = None,
        history: dict[str, list[float]] | None = None,
        custom_objects: Mapping[str, Any] | bytes = b"",
        **params: Any,
    ) -> KerasModel:
        """Wrap a trained Keras model (``params``: ``prediction_col``, ``inference_batch_size``, ``task``...).

        ``custom_objects``: the custom layers and functions the model needs to load, as Keras takes them
        (a dict of name to object), or as the bytes cerebro_spark pickled them into.
        """
        instance = cls()
        instance._set(feature_columns=feature_columns, label_columns=label_columns or [], **params)
        instance._keras = model
        instance._model_bytes = model_to_bytes(model)
        instance._custom_objects = (
            custom_objects if isinstance(custom_objects, bytes) else dump_custom_objects(custom_objects)
        )
        instance.history = dict(history or {})
        return instance

    @classmethod
    def from_store(
        cls,
        store: Store,
        spec: ModelSpec,
        version: int,
        est: KerasEstimator | Any,
        *,
        history: dict[str, list[float]] | None = None,
    ) -> KerasModel:
        """The model of ``spec`` at checkpoint ``version``, with ``est``'s column and prediction params
        (an estimator saved before it had all of them gives the defaults of those it lacks)."""
        model = load_trained_model(store, spec, version)
        instance = cls.from_keras(
            model,
            feature_columns=est.getOrDefault(est.feature_columns),
            label_columns=est.getOrDefault(est.label_columns),
            history=history,
            custom_objects=spec.custom_objects,
            **prediction_param_values(est),
        )
        instance.params_used = dict(spec.params)
        return instance

    def keras(self) -> keras.Model:
        """The trained ``keras.Model`` (loaded once, then kept)."""
        if self._keras is None:
            self._keras = model_from_bytes(self._model_bytes, self._custom_objects)
        return self._keras

    def _transform(self, dataset: DataFrame) -> DataFrame:
        validate_params(self, ["prediction_col", "inference_batch_size", *_OUTPUT_PARAMS])
        model = self.keras()
        features = self.getFeatureColumns()
        order = match_columns(input_names(model), features, "feature_columns", "input")
        shapes = [tuple(model.inputs[i].shape[1:]) for i in range(len(order))]
        kinds, columns = plan_outputs(
            model,
            prediction_col=self.getOrDefault(self.prediction_col),
            **{name: self.getOrDefault(name) for name in _OUTPUT_PARAMS},
        )
        if not isinstance(dataset, DataFrame):  # pandas or Arrow, on the driver: no Spark
            batch = self.getOrDefault(self.inference_batch_size)
            return predict_local(dataset, model, [features[j] for j in order], shapes, kinds, columns, batch)
        with spark_handle(dataset.sparkSession).driver_python():  # the UDF captures it now
            inputs = input_columns(dataset, [features[j] for j in order], [len(s) for s in shapes])
            return predict_columns(
                dataset,
                inputs,
                shapes,
                self._model_bytes,
                self._custom_objects,
                kinds,
                columns,
                self.getOrDefault(self.inference_batch_size),
            )

    def _save_extra(self, files: SavedFiles, options: dict[str, str]) -> dict[str, Any]:
        return self._write_files(files)

    def _write_files(self, files: SavedFiles, prefix: str = "") -> dict[str, Any]:
        """Write the ``.keras`` file (and custom objects) under ``prefix``; return its metadata."""
        files.write_bytes(f"{prefix}model.keras", self._model_bytes or model_to_bytes(self.keras()))
        extra: dict[str, Any] = {
            "model": f"{prefix}model.keras",
            "history": self.history,
            "custom_objects": None,
        }
        if self._custom_objects:
            extra["custom_objects"] = f"{prefix}custom_objects.pkl"
            files.write_bytes(extra["custom_objects"], self._custom_objects)
        extra["params_used"] = encode_value(self.params_used, f"{prefix}params_used", files, "params_used")
        return extra

    def _load_extra(self, files: SavedFiles, extra: dict[str, Any], saved_with: dict[str, str]) -> None:
        """Fill this model from what :meth:`_write_files` wrote (the Keras model itself loads lazily)."""
        self._model_bytes = files.read_bytes(extra["model"])
        self._keras = None
        if extra.get("custom_objects"):
            what = f"the custom objects of the model in {files.path!r}"
            data = read_trusted(files, extra["custom_objects"], what)
            unpickle(data, what, saved_with)  # fails now, clearly, rather than in transform on the executors
            self._custom_objects = data
        self.history = {k: list(v) for k, v in extra.get("history", {}).items()}
        self.params_used = decode_value(extra["params_used"], files, "params_used", saved_with)


_OUTPUT_PARAMS = ("probability_col", "raw_prediction_col", "output_type", "task")
