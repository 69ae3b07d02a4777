"""Data preparation without Spark: rows the driver holds -> the same Parquet partitions and metadata.

For the engines that run without a JVM (standalone workers, Dask, Ray, the in-process backend), the
driver reads the data into one Arrow table: a pandas DataFrame, a ``pyarrow.Table``, a Parquet file or
directory (a local path or a URL pyarrow reads), a Dask DataFrame (computed) or a Ray Dataset. Then
the steps of :func:`~cerebro_spark.data.prepare.prepare_data` on rows collected to the driver: the
same column checks (on the Arrow types), the same summary and errors, the same routing (row ``g`` of a
split goes to partition ``g % num_partitions``, in the data's order) and the same files and
``_metadata.json``. A validation fraction is drawn with numpy's generator from the seed (not Spark's
``rand``), so it picks other rows than a Spark preparation would; a validation column picks the same.

The data must fit in the driver's memory (twice: the input and its stored form).
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from cerebro_spark.data._collected import _POSITION, summarize_table
from cerebro_spark.data._columns import (
    Kind,
    SourceColumn,
    check_column_lists,
    check_present,
    check_reserved,
    check_weight_column,
    normalize_validation,
)
from cerebro_spark.data._summary import FLAG, check_split, check_summary
from cerebro_spark.data.prepare import (
    _column_spec,
    _warn_if_large,
    _write,
    check_params,
    complete,
    load_prepared,
)
from cerebro_spark.data.spec import METADATA_FORMAT, DatasetSpec
from cerebro_spark.errors import DataError, InvalidParamError
from cerebro_spark.store import layout
from cerebro_spark.store.base import Store

logger = logging.getLogger(__name__)

_FINGERPRINT_CHARS = 32


def to_arrow(data: Any, columns: Sequence[str] | None = None) -> pa.Table:
    """``data`` as one Arrow table on the driver (only ``columns``, when given and readable so).

    Raises
    ------
    InvalidParamError
        For a kind of data this cannot read.
    """
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, str):
        import pyarrow.parquet as pq

        try:
            return pq.read_table(data, columns=list(columns) if columns is not None else None)
        except (OSError, pa.ArrowInvalid) as e:
            raise DataError(f"Cannot read the Parquet data at {data!r}: {e}") from e
    module = type(data).__module__.split(".")[0]
    if module == "pandas" and hasattr(data, "columns"):
        frame = data[list(columns)] if columns is not None else data
        return pa.Table.from_pandas(frame, preserve_index=False)
    if module in ("dask", "dask_expr") and hasattr(data, "compute"):
        frame = data[list(columns)] if columns is not None else data
        return to_arrow(frame.compute())
    if module == "ray" and hasattr(data, "to_arrow_refs"):
        import ray

        tables = ray.get(data.to_arrow_refs())
        table = pa.concat_tables(tables, promote_options="default") if tables else pa.table({})
        table = table.select(list(columns)) if columns is not None else table
        return _without_tensor_types(table)
    raise InvalidParamError(
        "The data to prepare must be a Spark DataFrame, a pandas DataFrame, a pyarrow Table, the path of a "
        f"Parquet file or directory, a Dask DataFrame or a Ray Dataset. Received: {type(data).__name__}."
    )


def prepare_local(
    data: Any,
    store: Store,
    *,
    feature_columns: Sequence[str],
    label_columns: Sequence[str],
    num_partitions: int,
    validation: float | str | None = None,
    seed: int | None = None,
    reuse: bool = True,
    sample_weight_column: str | None = None,
) -> DatasetSpec:
    """Write ``data``'s feature and label columns as Parquet partitions into ``store``, or reuse them;
    :func:`~cerebro_spark.data.prepare.prepare_data`'s parameters, results and errors, without Spark.

    The fingerprint covers the rows' content (the selected columns, hashed), their types and the
    parameters: the same rows prepared again are reused, whatever they were read from.

    Examples
    --------
    >>> spec = prepare_local(pandas_frame, store, feature_columns=["x"], label_columns=["y"],
    ...                      num_partitions=2, validation=0.2, seed=7)  # doctest: +SKIP
    """
    started = time.perf_counter()
    num_partitions, seed = check_params(store, num_partitions, seed, reuse)
    features, labels = check_column_lists(feature_columns, label_columns)
    weight = check_weight_column(sample_weight_column, features, labels)
    validation = normalize_validation(validation)
    wanted = [
        *features,
        *labels,
        *([weight] if weight else []),
        *([validation] if isinstance(validation, str) else []),
    ]
    table = to_arrow(data, _readable(data, wanted))
    columns = resolve_arrow_columns(table.schema, features, labels, weight)
    if isinstance(validation, str):
        _check_validation_column(table.schema, validation)
    stored = [_cast(table.column(c.name), c) for c in columns]
    flag = table.column(validation) if isinstance(validation, str) else None
    fingerprint = _fingerprint(stored, flag, table.num_rows, columns, validation, num_partitions, seed)
    root = layout.data_root(fingerprint)
    if reuse and store.exists(f"{root}/_metadata.json"):
        spec = load_prepared(store, root)
        logger.info("reusing the prepared data %s in %s (%d training rows)", root, store, spec.train_rows)
        return spec

    split_seed = seed if seed is not None else secrets.randbits(62)
    converted = _converted(stored, flag, table.num_rows, validation, split_seed)
    summary = summarize_table(converted, columns)
    shapes = check_summary(summary, columns, validation if isinstance(validation, str) else None)
    check_split(summary, num_partitions, validation, split_seed)
    specs = tuple(_column_spec(c, shapes[c.name], summary) for c in columns)
    _warn_if_large(specs, summary.train_rows, num_partitions)

    store.delete(f"{root}/_metadata.json")  # first: a crash below must not leave a "complete" marker
    store.delete(root, recursive=True)
    train, val = _write(
        None, store, root, specs, summary, num_partitions, validation is not None, 0, converted
    )
    spec = complete(
        store,
        fingerprint,
        root,
        specs,
        columns,
        summary,
        (train, val),
        (num_partitions, validation, seed, split_seed),
    )
    logger.info(
        "prepared %d training rows and %d validation rows in %s of %s on the driver in %.1fs",
        spec.train_rows,
        spec.val_rows,
        root,
        store,
        time.perf_counter() - started,
    )
    return spec


def _without_tensor_types(table: pa.Table) -> pa.Table:
    """Ray's tensor columns (an extension type: ``shape`` per row) as nested fixed-size lists."""
    for i, field in enumerate(table.schema):
        if isinstance(field.type, pa.ExtensionType) and hasattr(field.type, "shape"):
            values = np.asarray(table.column(i).combine_chunks().to_numpy())
            nested: pa.Array = pa.array(values.reshape(-1))
            for size in reversed(values.shape[1:]):
                nested = pa.FixedSizeListArray.from_arrays(nested, int(size))
            table = table.set_column(i, field.name, nested)
    return table


def _readable(data: Any, wanted: list[str]) -> list[str] | None:
    """The columns to read of ``data`` (all for an Arrow table: it is read already); missing ones are
    named by the column check, so only existing ones are asked for."""
    names: list[str] | None = None
    if isinstance(data, str):
        import pyarrow.parquet as pq

        try:
            names = list(pq.read_schema(data).names) if not _is_directory(data) else None
        except (OSError, pa.ArrowInvalid):
            names = None
    elif hasattr(data, "columns") and not isinstance(data, pa.Table):
        columns = data.columns() if callable(data.columns) else data.columns  # a Ray Dataset's is a method
        names = [str(c) for c in columns]
    if names is None:
        return None
    return [name for name in wanted if name in names]


def _is_directory(path: str) -> bool:
    import os

    return "://" not in path and os.path.isdir(path)


# ---- the column checks on Arrow types -----------------------------------------------------------------


def resolve_arrow_columns(
    schema: pa.Schema, features: list[str], labels: list[str], weight: str | None = None
) -> list[SourceColumn]:
    """The checks of :func:`~cerebro_spark.data._columns.resolve_columns` on an Arrow schema; each
    column's ``spark_type`` is the Spark type its Arrow type converts to (what the spec records)."""
    types = {field.name: field.type for field in schema}
    wanted = features + labels + ([weight] if weight else [])
    check_reserved(wanted)
    check_present(wanted, list(types), "the data")
    columns = [_resolve(name, "feature", types[name]) for name in features]
    columns += [_resolve(name, "label", types[name]) for name in labels]
    if weight:
        found = _classify(types[weight], allow_bool=False)
        if found is None or found[0] is not Kind.SCALAR:
            raise DataError(
                f"Sample weight column {weight!r} must be numeric, one weight per row. Received: {types[weight]}."
            )
        columns.append(SourceColumn(weight, "weight", Kind.SCALAR, _spark_name(types[weight]), "float32"))
    return columns


def _resolve(name: str, role: str, dtype: pa.DataType) -> SourceColumn:
    allow_bool = role == "label"
    found = _classify(dtype, allow_bool)
    if found is None:
        what = "numeric or boolean" if allow_bool else "numeric"
        numbers = "numbers or booleans" if allow_bool else "numbers"
        hint = ""
        if pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_dictionary(dtype):
            hint = (
                " Encode it first (e.g. pandas' factorize for a label, one-hot columns for a feature). A Dask "
                "DataFrame turns columns of arrays into text unless dask.config.set({'dataframe.convert-string': "
                "False}) is in effect when it is made."
            )
        raise DataError(
            f"{role.capitalize()} column {name!r} must be {what}, an array of {numbers} or an array of arrays "
            f"of {numbers}. Received: {dtype}.{hint}"
        )
    kind, integral = found
    return SourceColumn(
        name, role, kind, _spark_name(dtype), "int64" if role == "label" and integral else "float32"
    )


def _number(dtype: pa.DataType, allow_bool: bool) -> bool | None:
    """Whether a numeric type is integral; None when it is no number."""
    if pa.types.is_integer(dtype):
        return True
    if pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return False
    if allow_bool and pa.types.is_boolean(dtype):
        return True
    return None


def _is_list(dtype: pa.DataType) -> bool:
    return bool(
        pa.types.is_list(dtype) or pa.types.is_large_list(dtype) or pa.types.is_fixed_size_list(dtype)
    )


def _classify(dtype: pa.DataType, allow_bool: bool) -> tuple[Kind, bool] | None:
    if (integral := _number(dtype, allow_bool)) is not None:
        return Kind.SCALAR, integral
    if _is_list(dtype):
        inner = dtype.value_type
        if (integral := _number(inner, allow_bool)) is not None:
            return Kind.ARRAY, integral
        if _is_list(inner) and (integral := _number(inner.value_type, allow_bool)) is not None:
            return Kind.NESTED, integral
    return None


_SPARK_NAMES = {
    "int8": "tinyint", "int16": "smallint", "int32": "int", "int64": "bigint", "uint8": "smallint",
    "uint16": "int", "uint32": "bigint", "uint64": "decimal(20,0)", "halffloat": "float", "float": "float",
    "double": "double", "bool": "boolean",
}  # fmt: skip


def _spark_name(dtype: pa.DataType) -> str:
    """The Spark type name of an Arrow type (``int64`` -> ``bigint``, ``list<double>`` -> ``array<double>``)."""
    if _is_list(dtype):
        return f"array<{_spark_name(dtype.value_type)}>"
    if pa.types.is_decimal(dtype):
        return f"decimal({dtype.precision},{dtype.scale})"
    return _SPARK_NAMES.get(str(dtype), str(dtype))


def _check_validation_column(schema: pa.Schema, name: str) -> None:
    if name not in schema.names:
        raise DataError(
            f"Validation column {name!r} (validation={name!r}) is missing from the data. "
            f"Available columns: {', '.join(map(repr, schema.names)) or 'none'}."
        )
    dtype = schema.field(name).type
    if not pa.types.is_boolean(dtype):
        raise DataError(
            f"Validation column {name!r} must be boolean (True on validation rows). Received: {dtype}."
        )


# ---- conversion and fingerprint -------------------------------------------------------------------------


def _converted(
    stored: list[pa.ChunkedArray],
    flag: pa.ChunkedArray | None,
    rows: int,
    validation: float | str | None,
    seed: int,
) -> pa.Table:
    """The stored columns ``c0, c1...``, the split flag and each row's position: what
    :func:`~cerebro_spark.data._collected.summarize_table` and ``routed_table`` take."""
    arrays: list[Any] = list(stored)
    names = [f"c{i}" for i in range(len(stored))]
    if flag is not None:
        arrays.append(flag)
        names.append(FLAG)
    elif validation is not None:
        draws = np.random.default_rng(seed).random(rows)
        arrays.append(pa.array(draws < validation))
        names.append(FLAG)
    arrays.append(pa.array(np.arange(rows, dtype=np.int64)))  # one input partition, in order
    names.append(_POSITION)
    return pa.Table.from_arrays(arrays, names=names)


def _cast(values: pa.ChunkedArray, column: SourceColumn) -> pa.ChunkedArray:
    element = pa.float32() if column.dtype == "float32" else pa.int64()
    if column.kind is Kind.SCALAR:
        target: pa.DataType = element
    elif column.kind is Kind.ARRAY:
        target = pa.list_(element)
    else:
        target = pa.list_(pa.list_(element))
    if _is_list(values.type) and pa.types.is_fixed_size_list(values.type):
        values = values.cast(pa.list_(values.type.value_type))
    try:
        return values.cast(target, safe=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise DataError(f"Column {column.name!r} cannot be stored as {target}: {e}") from e


def _fingerprint(
    stored: list[pa.ChunkedArray],
    flag: pa.ChunkedArray | None,
    rows: int,
    columns: Sequence[SourceColumn],
    validation: float | str | None,
    num_partitions: int,
    seed: int | None,
) -> str:
    """sha256 over the stored columns' content (the same rows give the same hash, whatever Arrow types
    or file they came from) and the parameters."""
    digest = hashlib.sha256()
    for values in [*stored, *([flag] if flag is not None else [])]:
        array = values.combine_chunks()
        sink = pa.BufferOutputStream()
        batch = pa.record_batch([array], names=["v"])
        with pa.ipc.new_stream(sink, batch.schema) as writer:
            writer.write_batch(batch)
        digest.update(sink.getvalue())
    document = {
        "format": METADATA_FORMAT,
        "source": "arrow",
        "content": digest.hexdigest(),
        "rows": rows,
        "columns": [[c.name, c.role, c.spark_type] for c in columns],
        "num_partitions": num_partitions,
        "validation": validation,
        "seed": seed,
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:_FINGERPRINT_CHARS]


__all__ = ["prepare_local", "to_arrow"]
