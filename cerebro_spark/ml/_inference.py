"""Vectorized prediction for ``transform``: an Arrow UDF over Arrow record batches.

The UDF receives the model as ``.keras`` bytes (a value) and loads it once per Python worker process
(a cache keyed by the bytes' sha256). Each Arrow batch of inputs becomes numpy arrays without a loop
over rows, is predicted ``batch_size`` rows per ``predict_on_batch`` call, and goes back as Arrow
arrays: one struct holding every output column, so the model runs once per row. Columns that are not
inputs never leave the JVM.

:func:`plan_outputs` decides on the driver which columns ``transform`` writes (see docs/columns.md).
"""

from __future__ import annotations

import gc
import hashlib
import math
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.ml.linalg import VectorUDT
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cerebro_spark.errors import DataError, InvalidParamError
from cerebro_spark.training.keras_io import model_from_bytes
from cerebro_spark.training.tf_import import import_tensorflow

_LOCK = threading.Lock()
_LOADED: dict[str, Any] = {}  # per Python worker process: model digest -> loaded Keras model

#: Loss names (lower case, without "_" or spaces) that make an output a classifier under task="auto".
_CLASSIFICATION_LOSSES = ("crossentropy", "focal", "hinge", "kldivergence")


@dataclass(frozen=True, slots=True)
class OutputColumn:
    """One column ``transform`` writes, computed from one model output.

    ``what`` is ``"value"`` (the output as the model gives it), ``"prediction"`` (class index) or
    ``"probability"`` (class probabilities); ``shape`` is the per-row shape written (``()``: a double).
    """

    name: str
    output: int
    what: str
    shape: tuple[int | None, ...]
    vector: bool = False


@dataclass(frozen=True, slots=True)
class OutputKind:
    """How to read one model output: a classifier's output holds probabilities or logits."""

    classifier: bool
    from_logits: bool = False


def plan_outputs(
    model: Any,
    *,
    prediction_col: str,
    probability_col: str,
    raw_prediction_col: str,
    output_type: str,
    task: str,
) -> tuple[tuple[OutputKind, ...], tuple[OutputColumn, ...]]:
    """The columns ``transform`` writes for ``model``, and how to read each of its outputs.

    A regression output gives one column, ``prediction_col``: a double when the output holds one value
    per row, else its values (array<float>, nested arrays, or a vector with ``output_type="vector"``).
    A classifier output gives ``prediction_col`` (class index as a double), ``probability_col`` (class
    probabilities) and ``raw_prediction_col`` (the output as the model gives it); an empty name skips
    that column. With several outputs, every name gets the suffix ``_<output index>``.
    """
    shapes = [tuple(t.shape[1:]) for t in model.outputs]
    losses = _loss_per_output(model, len(shapes))
    kinds, columns = [], []
    for i, (shape, loss) in enumerate(zip(shapes, losses, strict=True)):
        suffix = "" if len(shapes) == 1 else f"_{i}"
        kind = _output_kind(loss, shape, task, i)
        kinds.append(kind)
        values = math.prod(d or 2 for d in shape)
        vector = output_type == "vector" and len(shape) == 1
        if not kind.classifier:
            single = values == 1 and None not in shape
            columns.append(OutputColumn(prediction_col + suffix, i, "value", () if single else shape, vector))
            continue
        classes = max(2, int(shape[0] or 2))
        if raw_prediction_col:
            columns.append(OutputColumn(raw_prediction_col + suffix, i, "value", shape, vector))
        if probability_col:
            columns.append(OutputColumn(probability_col + suffix, i, "probability", (classes,), vector))
        columns.append(OutputColumn(prediction_col + suffix, i, "prediction", ()))
    names = [c.name for c in columns]
    if len(set(names)) != len(names):
        raise InvalidParamError(
            "prediction_col, probability_col and raw_prediction_col must differ. "
            f"Received the output columns {names}."
        )
    return tuple(kinds), tuple(columns)


def _loss_per_output(model: Any, outputs: int) -> list[Any]:
    loss = getattr(model, "loss", None)
    if isinstance(loss, dict):
        names = getattr(model, "output_names", None) or [model.layers[-1].name]
        return [loss.get(name) for name in names]
    if isinstance(loss, (list, tuple)):
        return [*loss, *[None] * (outputs - len(loss))][:outputs]
    return [loss] * outputs


def _loss_name(loss: Any) -> str:
    if loss is None:
        return ""
    if isinstance(loss, str):
        name = loss
    else:
        name = str(getattr(loss, "name", None) or getattr(loss, "__name__", None) or type(loss).__name__)
    return name.lower().replace("_", "").replace(" ", "")


def _output_kind(loss: Any, shape: tuple[int | None, ...], task: str, index: int) -> OutputKind:
    name = _loss_name(loss)
    if task == "regression":
        return OutputKind(False)
    if task == "auto":
        binary_multi_label = "binary" in name and shape != (1,)
        if not any(word in name for word in _CLASSIFICATION_LOSSES) or binary_multi_label:
            return OutputKind(False)
        if len(shape) != 1 or shape[0] is None:
            return OutputKind(False)
    elif len(shape) != 1 or shape[0] is None:
        raise InvalidParamError(
            "task='classification' needs model outputs of shape (classes,) per row. "
            f"Received: output {index} of shape {shape}."
        )
    config = loss.get_config() if hasattr(loss, "get_config") else {}
    return OutputKind(True, bool(isinstance(config, dict) and config.get("from_logits")))


def _spark_type(column: OutputColumn) -> T.DataType:
    if not column.shape:
        return T.DoubleType()
    result: T.DataType = T.DoubleType() if column.vector else T.FloatType()
    for _ in column.shape:
        result = T.ArrayType(result, containsNull=False)
    return result


def input_columns(df: DataFrame, names: Sequence[str], ranks: Sequence[int]) -> list[Column]:
    """Feature columns as Arrow-friendly float columns (vectors become arrays), after checking them.

    ``ranks`` holds the number of dimensions per row that each model input expects.
    """
    fields = {f.name: f.dataType for f in df.schema.fields}
    missing = [n for n in names if n not in fields]
    if missing:
        raise DataError(
            f"Feature column(s) {missing} not found for transform. Available columns: {df.columns}."
        )
    columns = []
    for name, rank in zip(names, ranks, strict=True):
        dtype = fields[name]
        column = F.col("`" + name.replace("`", "``") + "`")
        depth, inner = 0, dtype
        while isinstance(inner, T.ArrayType):
            depth, inner = depth + 1, inner.elementType
        if isinstance(dtype, VectorUDT) and rank == 1:
            columns.append(vector_to_array(column, "float32"))
        elif isinstance(inner, (T.NumericType, T.BooleanType)) and depth == rank:
            columns.append(column.cast("array<" * depth + "float" + ">" * depth))
        else:
            raise DataError(
                f"Feature column {name!r} must hold rows with {rank} dimension(s) for its model input "
                f"(numbers, arrays, arrays of arrays or vectors). Received: {dtype.simpleString()}."
            )
    return columns


def predict_columns(
    df: DataFrame,
    inputs: list[Column],
    input_shapes: list[tuple[int | None, ...]],
    model_bytes: bytes,
    custom_objects: bytes,
    kinds: tuple[OutputKind, ...],
    columns: tuple[OutputColumn, ...],
    batch_size: int,
) -> DataFrame:
    """``df`` with the output ``columns`` added, computed by one UDF call per row."""
    digest = hashlib.sha256(model_bytes).hexdigest()
    struct_type = T.StructType([T.StructField(f"c{j}", _spark_type(c), True) for j, c in enumerate(columns)])
    names = [f"x{i}" for i in range(len(inputs))]

    # One input goes to the UDF as it is; several go as one struct. (Wrapping a single input in a
    # struct costs the JVM a struct writer per row: about a tenth of transform's JVM time.)
    direct = len(inputs) == 1 and hasattr(F, "arrow_udf")

    def predict(batches: Iterator[pa.Array]) -> Iterator[pa.Array]:
        model = _load(digest, model_bytes, custom_objects, input_shapes, batch_size)
        for batch in batches:
            arrays = [batch] if direct else [batch.field(n) for n in names]
            yield predict_batch(model, arrays, input_shapes, kinds, columns, batch_size)

    udf = _arrow_udf(predict, struct_type)
    tmp = "__cerebro_predictions__"
    argument = inputs[0] if direct else F.struct(*[c.alias(n) for c, n in zip(inputs, names, strict=True)])
    out = df.withColumn(tmp, udf(argument))
    fields = []
    for j, c in enumerate(columns):
        field = F.col(tmp).getField(f"c{j}")
        fields.append((array_to_vector(field) if c.vector else field).alias(c.name))
    return out.select(*[F.col("`" + n.replace("`", "``") + "`") for n in df.columns], *fields)


def predict_local(
    data: Any,
    model: Any,
    features: Sequence[str],
    input_shapes: list[tuple[int | None, ...]],
    kinds: tuple[OutputKind, ...],
    columns: tuple[OutputColumn, ...],
    batch_size: int,
) -> Any:
    """``transform`` without Spark: a pandas DataFrame (or a pyarrow Table) with the output ``columns``
    added, computed on the driver by ``model`` in batches of ``batch_size`` rows. Arrays come out as
    numpy arrays in pandas and as lists in Arrow (``output_type='vector'`` is Spark's: it gives arrays)."""
    import pandas as pd

    if isinstance(data, pa.Table):
        table = data
    elif isinstance(data, pd.DataFrame):
        missing = [name for name in features if name not in data.columns]
        if missing:
            raise DataError(
                f"Feature columns missing from the data: {missing}. Available columns: {list(data.columns)}."
            )
        table = pa.Table.from_pandas(data[list(features)], preserve_index=False)
    else:
        raise InvalidParamError(
            "transform takes a Spark DataFrame, a pandas DataFrame or a pyarrow Table. "
            f"Received: {type(data).__name__}."
        )
    arrays = [table.column(name).combine_chunks() for name in features]
    outputs = predict_batch(model, arrays, input_shapes, kinds, columns, batch_size)
    if isinstance(data, pa.Table):
        for j, column in enumerate(columns):
            table = table.append_column(column.name, outputs.field(j))
        return table
    result = data.copy()
    for j, column in enumerate(columns):
        values = outputs.field(j)
        if not column.shape:
            result[column.name] = values.to_numpy(zero_copy_only=False)
        else:
            result[column.name] = list(_to_numpy(values, column.shape, len(data)))
    return result


def _arrow_udf(fn: Any, return_type: T.DataType) -> Any:
    """An iterator Arrow UDF (Spark >= 4.1), else the same function behind an iterator pandas UDF."""
    if hasattr(F, "arrow_udf"):  # the iterator kind, from fn's type hints
        return F.arrow_udf(fn, return_type)
    import pandas as pd

    def via_pandas(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        def as_struct(frame: pd.DataFrame) -> pa.StructArray:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            return pa.StructArray.from_arrays(
                [column.combine_chunks() for column in table.columns], names=table.column_names
            )

        for result in fn(as_struct(frame) for frame in frames if len(frame)):
            names = [field.name for field in result.type]  # (StructType.names is pyarrow >= 15)
            yield pa.Table.from_arrays(result.flatten(), names=names).to_pandas()

    # the hints as objects: this module's string annotations would not resolve (pandas is imported here)
    via_pandas.__annotations__ = {"frames": Iterator[pd.DataFrame], "return": Iterator[pd.DataFrame]}
    via_pandas.__name__ = fn.__name__  # the plan shows the same UDF name on every Spark version
    return F.pandas_udf(via_pandas, return_type)  # type: ignore[call-overload]


def predict_batch(
    model: Any,
    arrays: list[pa.Array],
    input_shapes: list[tuple[int | None, ...]],
    kinds: tuple[OutputKind, ...],
    columns: tuple[OutputColumn, ...],
    batch_size: int,
) -> pa.StructArray:
    """One Arrow batch of inputs, an array per model input -> the struct of output columns (runs on
    the workers)."""
    rows = len(arrays[0])
    inputs = [_to_numpy(a, s, rows) for a, s in zip(arrays, input_shapes, strict=True)]
    outputs = _predict(model, inputs, batch_size)
    arrays = []
    for column in columns:
        values = outputs[column.output].astype(np.float32, copy=False)
        kind = kinds[column.output]
        if column.what == "probability":
            values = _probabilities(values, kind)
        elif column.what == "prediction":
            values = _class_index(values, kind)
        arrays.append(_to_arrow(values, column))
    return pa.StructArray.from_arrays(arrays, names=[f"c{j}" for j in range(len(columns))])


def _probabilities(values: np.ndarray, kind: OutputKind) -> np.ndarray:
    if values.shape[1] == 1:
        p = 1 / (1 + np.exp(-values[:, 0])) if kind.from_logits else values[:, 0]
        return np.stack([1 - p, p], axis=1)
    if kind.from_logits:
        shifted = np.exp(values - values.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]
    return values


def _class_index(values: np.ndarray, kind: OutputKind) -> np.ndarray:
    if values.shape[1] == 1:
        return (values[:, 0] > (0.0 if kind.from_logits else 0.5)).astype(np.float64)
    return values.argmax(axis=1).astype(np.float64)  # type: ignore[no-any-return]


def _to_numpy(array: pa.Array, shape: tuple[int | None, ...], rows: int) -> np.ndarray:
    """A column of (nested) lists -> one float32 array ``(rows, *shape)``, without a loop over rows."""
    if array.null_count:
        raise DataError(f"Feature column holds {array.null_count} null rows; expected none for transform.")
    values = array
    sizes = []
    for _ in shape:
        if values.null_count:
            raise DataError("Feature column holds null arrays; expected arrays of numbers for transform.")
        values = values.flatten()  # honours slices and offsets
        sizes.append(len(values))
    flat = values.to_numpy(zero_copy_only=False)
    dims = [d for d in shape]
    for depth, d in enumerate(dims):
        count = sizes[depth] // max(1, (sizes[depth - 1] if depth else rows))
        if d is None:
            dims[depth] = count
        elif count != d or sizes[depth] != (sizes[depth - 1] if depth else rows) * d:
            raise DataError(
                f"A feature column holds rows whose arrays do not have the model input's shape {shape}: "
                f"found {sizes[depth]} values at depth {depth} for {rows} rows."
            )
    return np.asarray(flat, dtype=np.float32).reshape((rows, *dims))


def _to_arrow(values: np.ndarray, column: OutputColumn) -> pa.Array:
    rows = len(values)
    if not column.shape:
        return pa.array(values.reshape(rows).astype(np.float64, copy=False))
    flat = values.astype(np.float64 if column.vector else np.float32, copy=False).reshape(-1)
    result: pa.Array = pa.array(flat)
    dims = values.shape[1:]
    for depth in range(len(dims) - 1, -1, -1):
        count = rows * math.prod(dims[:depth])
        offsets = np.arange(0, (count + 1) * dims[depth], dims[depth], dtype=np.int32)
        result = pa.ListArray.from_arrays(pa.array(offsets), result)
    return result


def _load(
    digest: str,
    model_bytes: bytes,
    custom_objects: bytes,
    input_shapes: list[tuple[int | None, ...]] | None = None,
    batch_size: int = 1,
) -> Any:
    """The model, loaded once per Python worker process and kept until another model is asked for.

    After loading (and tracing on a batch of zeros, with ``input_shapes``), the garbage collector's current objects are
    frozen: a reused PySpark worker runs ``gc.collect()`` after every task, and walking TensorFlow's
    and the model's objects there costs about a second per task; frozen objects are skipped.
    """
    with _LOCK:
        model = _LOADED.get(digest)
        if model is None:
            _limit_threads()
            gc.unfreeze()  # the model this process held before may go
            _LOADED.clear()  # keep one model per process: transforms of many models don't pile up
            model = model_from_bytes(model_bytes, custom_objects)
            if input_shapes is not None:
                zeros = [np.zeros((batch_size, *(d or 1 for d in s)), np.float32) for s in input_shapes]
                model.predict_on_batch(zeros[0] if len(zeros) == 1 else zeros)
            _LOADED[digest] = model
            gc.collect()
            gc.freeze()
        return model


def _limit_threads() -> None:
    """Use the task's cores, not every core of the machine, when TensorFlow starts in this worker."""
    from pyspark import TaskContext

    context = TaskContext.get()
    if context is None:  # not in a Spark task: leave TensorFlow's defaults
        return
    cpus = int(context.cpus())
    tf = import_tensorflow()

    try:
        tf.config.threading.set_intra_op_parallelism_threads(cpus)
        tf.config.threading.set_inter_op_parallelism_threads(cpus)
    except RuntimeError:
        pass  # TensorFlow already running in this process: its thread pools are fixed


def _predict(model: Any, inputs: list[np.ndarray], batch_size: int) -> list[np.ndarray]:
    """Predict in chunks of ``batch_size`` rows; a shorter last chunk is padded only up to the next
    power of two (not to ``batch_size``: a large batch size on a small partition would allocate and
    compute mostly zeros), so the model's predict function is traced for a few sizes, not once per
    distinct chunk size."""
    rows = len(inputs[0])
    chunks: list[list[np.ndarray]] = []
    for start in range(0, rows, batch_size):
        x = [a[start : start + batch_size] for a in inputs]
        size = len(x[0])
        padded = min(batch_size, 1 << max(0, size - 1).bit_length())
        if size < padded:
            x = [np.concatenate([a, np.zeros((padded - size, *a.shape[1:]), a.dtype)]) for a in x]
        out = model.predict_on_batch(x[0] if len(x) == 1 else x)
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        chunks.append([np.asarray(o)[:size] for o in outs])
    return [np.concatenate([c[i] for c in chunks]) for i in range(len(chunks[0]))]
