"""The checks a fit makes before any training, each naming the model, the column or the param:
the model against the prepared data (inputs, outputs, class indices), the prediction params against
the model's outputs, the evaluation metric against what the model reports, and a writable Store.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from cerebro_spark.data.spec import ColumnSpec, DatasetSpec
from cerebro_spark.errors import DataError, InvalidParamError, StoreError
from cerebro_spark.ml._inference import plan_outputs
from cerebro_spark.ml._model_io import compiled_model
from cerebro_spark.store.base import Store
from cerebro_spark.training.io_mapping import column_order

if TYPE_CHECKING:
    from cerebro_spark.ml.estimator import KerasEstimator

logger = logging.getLogger(__name__)


def check_model_fits_data(model: Any, dataset: DatasetSpec, model_id: str, loss: Any = None) -> None:
    """The model's inputs and outputs must match the feature and label columns (mapped by name or by
    position: see :mod:`cerebro_spark.training.io_mapping`), in number and shape; with a sparse
    categorical ``loss``, the labels must be class indices of the output (their range is in the spec)."""
    features, labels = [c.name for c in dataset.features], [c.name for c in dataset.labels]
    try:
        x_order, y_order = column_order(model, features, labels)
    except DataError as e:
        raise DataError(f"Model {model_id!r} does not fit the data: {e}") from e
    for tensor, index in zip(model.outputs, y_order, strict=True):
        label = dataset.labels[index]
        produced = tuple(tensor.shape[1:])
        sparse = produced[:-1] == label.shape  # class indices, one per step (sequence labels)
        if len(label.shape) == 1 and label.shape[0] > 1 and produced != label.shape and not sparse:
            raise DataError(
                f"Model {model_id!r} has an output of shape {produced} (per row) but label column "
                f"{label.name!r} has rows of shape {label.shape}. Expected an output of shape "
                f"{label.shape} for these labels (or scalar labels, e.g. class indices)."
            )
    for tensor, index, output_loss in zip(model.outputs, y_order, _output_losses(model, loss), strict=True):
        _check_class_indices(dataset.labels[index], tuple(tensor.shape[1:]), output_loss, model_id)
    for tensor, index in zip(model.inputs, x_order, strict=True):
        column = dataset.features[index]
        expected = tuple(tensor.shape[1:])
        if len(expected) != len(column.shape) or any(
            e is not None and e != c for e, c in zip(expected, column.shape, strict=True)
        ):
            raise DataError(
                f"Model {model_id!r} expects input shape {expected} (per row) but feature column "
                f"{column.name!r} has rows of shape {column.shape}."
            )


#: Losses that take class indices in [0, classes) and fail inside TensorFlow (or give NaN on a GPU)
#: for any other label.
_SPARSE_LOSSES = frozenset({"sparse_categorical_crossentropy", "sparsecategoricalcrossentropy"})


def _output_losses(model: Any, loss: Any) -> list[Any]:
    """The loss of each of ``model``'s outputs (a str, a Loss, a function or None)."""
    count = len(model.outputs)
    if isinstance(loss, dict):
        names = list(getattr(model, "output_names", None) or [])
        return [loss.get(name) for name in names] if len(names) == count else [None] * count
    if isinstance(loss, (list, tuple)):
        return list(loss)[:count] + [None] * (count - len(loss))
    return [loss] * count


def _check_class_indices(label: ColumnSpec, produced: tuple[Any, ...], loss: Any, model_id: str) -> None:
    name = loss if isinstance(loss, str) else getattr(loss, "name", None) or getattr(loss, "__name__", "")
    classes = produced[-1] if produced else None
    if str(name).lower() not in _SPARSE_LOSSES or label.low is None or label.high is None or classes is None:
        return
    in_range = 0 <= label.low and label.high <= classes - 1
    if not in_range or not (float(label.low).is_integer() and float(label.high).is_integer()):
        raise DataError(
            f"Model {model_id!r} has an output of {classes} classes (shape {produced}) trained with {name}, "
            f"but label column {label.name!r} holds values from {label.low:g} to {label.high:g}. Expected "
            f"class indices from 0 to {classes - 1}: index the labels (e.g. pyspark.ml.feature.StringIndexer) "
            "or give the model as many outputs as there are classes."
        )


def check_prediction_plan(model: Any, source: Any) -> None:
    """The prediction params of ``source`` (the search, or the estimator itself) fit ``model``'s outputs:
    ``task='classification'`` needs outputs of shape (classes,). Checked before training, not at transform."""
    plan_outputs(model, **{name: source.getOrDefault(name) for name in PREDICTION_PLAN_PARAMS})


#: The params :func:`~cerebro_spark.ml._inference.plan_outputs` takes.
PREDICTION_PLAN_PARAMS = ("prediction_col", "probability_col", "raw_prediction_col", "output_type", "task")


def check_store_writable(store: Store) -> None:
    """Write and delete a probe file, so that a Store that cannot be written fails before any Spark job."""
    key = f".cerebro-write-check-{secrets.token_hex(4)}"
    try:
        store.write_bytes(key, b"")
        store.delete(key)
    except OSError as exc:
        raise StoreError(
            f"The Store at {store.url!r} cannot be written: {type(exc).__name__}: {exc}. Pass store= a "
            "folder or URL that the driver and every executor can write."
        ) from exc


def check_metric_is_reported(est: KerasEstimator, dataset: DatasetSpec, metric: str, model_id: str) -> None:
    """``metric`` must be among the names the compiled model reports (Keras' names, ``val_`` for
    validation): found by computing the loss and metrics eagerly on two rows of zeros shaped like the
    prepared data (the names ``evaluate`` reports, in a tenth of its time: nothing is traced)."""

    def zeros(columns: Sequence[Any], order: list[int]) -> Any:
        arrays = [np.zeros((2, *columns[i].shape), dtype=columns[i].dtype) for i in order]
        return arrays[0] if len(arrays) == 1 else arrays

    try:
        model = compiled_model(est)
        x_order, y_order = column_order(
            model, [c.name for c in dataset.features], [c.name for c in dataset.labels]
        )
        x, y = zeros(dataset.features, x_order), zeros(dataset.labels, y_order)
        y_pred = model(x, training=False)
        model.compute_loss(x, y, y_pred)  # builds the loss trackers ("loss", one per output)
        names = set(model.compute_metrics(x, y, y_pred, sample_weight=None))
    except Exception:  # the check is a courtesy; training reports any real problem with its traceback
        logger.debug("could not list the metric names of model %s", model_id, exc_info=True)
        return
    known = {*names, "learning_rate"} | ({f"val_{n}" for n in names} if dataset.has_validation else set())
    if metric not in known:
        raise InvalidParamError(
            f"The evaluation metric {metric!r} is not reported by model {model_id!r}: it reports "
            f"{sorted(known)}. Pass one of those as evaluation_metric, or add the metric to the "
            "estimator's metrics."
        )
