"""Vectorized prediction for ``transform``: a pandas UDF over Arrow batches.

The UDF receives the model as ``.keras`` bytes (a value), loads it once per Python worker
process, and predicts ``batch_size`` rows per ``predict_on_batch`` call. Columns that are not
inputs never leave the JVM.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from pyspark.ml.functions import vector_to_array
from pyspark.ml.linalg import VectorUDT
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cerebro_spark.errors import DataError

_LOCK = threading.Lock()
_LOADED: dict[str, Any] = {}  # per Python worker process: model digest -> loaded Keras model


def output_type(shape: tuple[int | None, ...]) -> T.DataType:
    """Spark type of one output per row: a double for one value, else (nested) arrays of doubles."""
    dims = [d for d in shape]
    if not dims or (len(dims) == 1 and dims[0] == 1):
        return T.DoubleType()
    result: T.DataType = T.DoubleType()
    for _ in dims:
        result = T.ArrayType(result, containsNull=False)
    return result


def input_columns(df: DataFrame, names: list[str]) -> list[Column]:
    """Feature columns as Arrow-friendly columns (vectors become arrays), after checking they exist."""
    missing = [n for n in names if n not in df.columns]
    if missing:
        raise DataError(
            f"Feature column(s) {missing} not found for transform. Available columns: {df.columns}."
        )
    columns = []
    for name in names:
        column = F.col(name)
        if isinstance(df.schema[name].dataType, VectorUDT):
            column = vector_to_array(column, "float32")
        columns.append(column)
    return columns


def predict_column(
    columns: list[Column],
    model_bytes: bytes,
    custom_objects: bytes,
    output_shapes: list[tuple[int | None, ...]],
    batch_size: int,
) -> Column:
    """A column holding the model's prediction(s): one value per output, a struct for several."""
    types = [output_type(s) for s in output_shapes]
    if len(types) == 1:
        return_type: T.DataType = types[0]
    else:
        return_type = T.StructType([T.StructField(f"_{i}", t, False) for i, t in enumerate(types)])
    digest = hashlib.sha256(model_bytes).hexdigest()

    def predict(batches: Iterator[pd.DataFrame]) -> Iterator[pd.Series]:
        model = _load(digest, model_bytes, custom_objects)
        for frame in batches:
            outputs = _predict(model, [_to_numpy(frame[c]) for c in frame.columns], batch_size)
            yield _to_series(outputs[0], types[0])

    def predict_several(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model = _load(digest, model_bytes, custom_objects)
        for frame in batches:
            outputs = _predict(model, [_to_numpy(frame[c]) for c in frame.columns], batch_size)
            yield pd.DataFrame(
                {f"_{i}": _to_series(o, t) for i, (o, t) in enumerate(zip(outputs, types, strict=True))}
            )

    udf = F.pandas_udf(predict if len(types) == 1 else predict_several, return_type)  # type: ignore[call-overload]
    return udf(F.struct(*[c.alias(f"_in{i}") for i, c in enumerate(columns)]))


def _load(digest: str, model_bytes: bytes, custom_objects: bytes) -> Any:
    with _LOCK:
        model = _LOADED.get(digest)
        if model is None:
            import pickle

            from cerebro_spark.ml._model_io import model_from_bytes

            _limit_threads()
            custom = pickle.loads(custom_objects) if custom_objects else None  # noqa: S301 (our own bytes)
            model = model_from_bytes(model_bytes, custom)
            _LOADED.clear()  # keep one model per process: transforms of many models don't pile up
            _LOADED[digest] = model
        return model


def _limit_threads() -> None:
    """Use the task's cores, not every core of the machine, when TensorFlow starts in this worker."""
    from pyspark import TaskContext

    context = TaskContext.get()
    cpus = int(context.cpus()) if context is not None else 1
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(cpus)
        tf.config.threading.set_inter_op_parallelism_threads(cpus)
    except RuntimeError:
        pass  # TensorFlow already running in this process: its thread pools are fixed


def _to_numpy(series: pd.Series) -> np.ndarray:
    values = series.to_numpy()
    if values.dtype != object:
        return values.astype(np.float32, copy=False)
    first = values[0]
    if isinstance(first, np.ndarray) and first.dtype == object:  # arrays of arrays
        return np.stack([np.stack(row) for row in values]).astype(np.float32, copy=False)
    return np.stack(values).astype(np.float32, copy=False)


def _predict(model: Any, inputs: list[np.ndarray], batch_size: int) -> list[np.ndarray]:
    """Predict in chunks of exactly ``batch_size`` rows (the last one padded), so the model's
    predict function is traced once, not once per distinct chunk size."""
    rows = len(inputs[0])
    chunks: list[list[np.ndarray]] = []
    for start in range(0, rows, batch_size):
        x = [a[start : start + batch_size] for a in inputs]
        size = len(x[0])
        if size < batch_size:
            x = [np.concatenate([a, np.zeros((batch_size - size, *a.shape[1:]), a.dtype)]) for a in x]
        out = model.predict_on_batch(x[0] if len(x) == 1 else x)
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        chunks.append([np.asarray(o)[:size] for o in outs])
    return [np.concatenate([c[i] for c in chunks]) for i in range(len(chunks[0]))]


def _to_series(values: np.ndarray, spark_type: T.DataType) -> pd.Series:
    values = values.astype(np.float64, copy=False)
    if isinstance(spark_type, T.DoubleType):
        return pd.Series(values.reshape(len(values)))
    if values.ndim == 2:
        return pd.Series(list(values))
    return pd.Series(values.tolist())
