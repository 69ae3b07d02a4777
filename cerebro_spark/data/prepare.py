"""Data preparation (driver side): a Spark DataFrame -> Parquet partitions and metadata in the Store.

:func:`prepare_data` checks the columns against the schema (no Spark job), runs one aggregate job
(row counts, nulls, array lengths, split sizes), then writes ``num_partitions`` training files and as
many validation files through the Store, and ``_metadata.json`` last. Small data (up to
:data:`COLLECT_MAX_BYTES`) is collected and written by the driver, larger data by the executors (a
shuffle, then a Python write job): the files are the same. A second call with the same data and
parameters finds the metadata and returns it without any Spark job.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import secrets
import time
from collections.abc import Sequence
from numbers import Integral
from typing import Any

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cerebro_spark.data import _routing as routing
from cerebro_spark.data._collected import (
    collect_arrow,
    collect_positioned,
    is_small,
    routed_table,
    summarize_table,
)
from cerebro_spark.data._columns import (
    SourceColumn,
    check_column_lists,
    check_validation_column,
    check_weight_column,
    col,
    normalize_validation,
    resolve_columns,
    with_converted,
)
from cerebro_spark.data._fingerprint import dataset_fingerprint
from cerebro_spark.data._summary import FLAG, Summary, check_split, check_summary, summarize
from cerebro_spark.data._writer import (
    RESULT_DDL,
    PartitionWriter,
    arrow_schema,
    partition_key,
    row_group_rows,
    split_of,
    write_collected,
    write_partition,
)
from cerebro_spark.data.spec import ColumnSpec, DatasetSpec, PartitionSpec
from cerebro_spark.errors import DataError, InvalidParamError
from cerebro_spark.store import layout
from cerebro_spark.store.base import Store

logger = logging.getLogger(__name__)

#: Prepared data up to this size (dense, as stored) is collected and written by the driver: one Spark job
#: and no Python workers, instead of a shuffle and a Python write job on the executors. Environment
#: variable ``CEREBRO_COLLECT_MAX_BYTES`` overrides it (0: always write from the executors).
COLLECT_MAX_BYTES = 64 << 20


def prepare_data(
    df: DataFrame,
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
    """Write ``df``'s feature and label columns as Parquet partitions into ``store``, or reuse them.

    Features are stored as float32; integral and boolean labels as int64, other labels as float32.
    Vectors (dense or sparse) become float32 arrays. Training rows are split into ``num_partitions``
    files whose sizes differ by at most one row, and validation rows likewise (a validation file may be
    empty when there are fewer validation rows than partitions).

    Prepared data lives under ``data/<fingerprint>``. The fingerprint covers the DataFrame's plan and
    input files, the selected columns and their types, ``num_partitions``, ``validation``, ``seed`` and
    the metadata format. Its limit: files changed *in place* under the same paths, behind the same plan,
    are not detected (for file sources the plan text and the sorted file list are compared; for
    in-memory data, Spark's ``semanticHash``). Pass ``reuse=False`` to prepare again in that case.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        The input rows. Feature columns may be numeric, arrays of numbers, arrays of arrays of numbers
        (shape ``(a, b)``) or ``pyspark.ml.linalg`` vectors; labels may also be boolean.
    store : Store
        Where to write; the driver and every executor must reach it.
    feature_columns, label_columns : sequence of str
        Non-empty lists of distinct column names; no column may be in both.
    num_partitions : int
        Number of training partitions (one per worker), at least 1 and at most the training rows.
    validation : float or str, optional
        None (the default) or 0: no validation data. A fraction in (0, 1): that share of rows, drawn
        with ``F.rand(seed)`` (the draw depends on the input's partitioning, as Spark's ``randomSplit``
        does). A str: a boolean column that is True on validation rows.
    seed : int, optional
        Seed of the validation draw. None (the default) draws a random seed, recorded in the spec.
    reuse : bool, default True
        Return existing prepared data with the same fingerprint instead of writing it again.
    sample_weight_column : str, optional
        A numeric column of per-row weights (>= 0, no nulls), stored as float32 beside the labels;
        the sums of the weights of each split go into the spec.

    Returns
    -------
    DatasetSpec
        The stored data's description (also in ``<root>/_metadata.json``).

    Raises
    ------
    InvalidParamError
        For a malformed parameter (empty column list, bad ``validation``, ``num_partitions < 1``...).
    DataError
        For missing or unsupported columns before any Spark job; after the aggregate job for an empty
        DataFrame, nulls, arrays of different lengths, fewer training rows than ``num_partitions`` or
        an empty validation split.

    Examples
    --------
    >>> spec = prepare_data(df, store, feature_columns=["features"], label_columns=["label"],
    ...                     num_partitions=2, validation=0.2, seed=7)  # doctest: +SKIP
    >>> spec.train_rows + spec.val_rows == df.count()  # doctest: +SKIP
    True
    """
    started = time.perf_counter()
    num_partitions, seed = _check_params(df, store, num_partitions, seed, reuse)
    collect_max_bytes = _collect_max_bytes()
    features, labels = check_column_lists(feature_columns, label_columns)
    weight = check_weight_column(sample_weight_column, features, labels)
    validation = normalize_validation(validation)
    columns = resolve_columns(df.schema, features, labels, weight)
    if isinstance(validation, str):
        check_validation_column(df.schema, validation)
    fingerprint = dataset_fingerprint(df, columns, num_partitions, validation, seed)
    root = layout.data_root(fingerprint)
    if reuse and store.exists(f"{root}/_metadata.json"):
        spec = load_prepared(store, root)
        logger.info("reusing the prepared data %s in %s (%d training rows)", root, store, spec.train_rows)
        return spec

    split_seed = seed if seed is not None else secrets.randbits(62)
    base = with_converted(df, columns, _split_flag(validation, split_seed))
    collected = _collect_small(base, columns, collect_max_bytes)
    summary = summarize(base, columns) if collected is None else summarize_table(collected, columns)
    shapes = check_summary(summary, columns, validation if isinstance(validation, str) else None)
    check_split(summary, num_partitions, validation, split_seed)
    specs = tuple(_column_spec(c, shapes[c.name], summary) for c in columns)
    _warn_if_large(specs, summary.train_rows, num_partitions)

    store.delete(f"{root}/_metadata.json")  # first: a crash below must not leave a "complete" marker
    store.delete(root, recursive=True)
    train, val = _write(
        base,
        store,
        root,
        specs,
        summary,
        num_partitions,
        validation is not None,
        collect_max_bytes,
        collected,
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
        "prepared %d training rows %s and %d validation rows %s in %s of %s in %.1fs",
        spec.train_rows,
        [p.rows for p in train],
        spec.val_rows,
        [p.rows for p in val],
        root,
        store,
        time.perf_counter() - started,
    )
    return spec


def complete(
    store: Store,
    fingerprint: str,
    root: str,
    specs: tuple[ColumnSpec, ...],
    columns: Sequence[SourceColumn],
    summary: Summary,
    parts: tuple[tuple[PartitionSpec, ...], tuple[PartitionSpec, ...]],
    params: tuple[int, float | str | None, int | None, int],
) -> DatasetSpec:
    """The prepared data's spec, written last as ``_metadata.json`` (its presence marks a complete
    preparation); ``params``: ``(num_partitions, validation, seed, split_seed)``."""
    features = sum(c.role == "feature" for c in columns)
    labels = sum(c.role == "label" for c in columns)
    spec = DatasetSpec(
        fingerprint=fingerprint,
        root=root,
        features=specs[:features],
        labels=specs[features : features + labels],
        train=parts[0],
        val=parts[1],
        params=_params(columns, *params),
        weight=specs[-1] if columns[-1].role == "weight" else None,
        train_weight=summary.train_weight,
        val_weight=summary.val_weight,
    )
    store.write_json(spec.metadata_key, spec.to_dict())
    return spec


def _column_spec(column: SourceColumn, shape: tuple[int, ...], summary: Summary) -> ColumnSpec:
    """The stored column; a label's value range goes with it (``fit`` checks class indices)."""
    stats = summary.stats[column.name]
    if column.role != "label" or stats.min_value is None or stats.max_value is None:
        return ColumnSpec(column.name, column.dtype, shape)
    return ColumnSpec(column.name, column.dtype, shape, float(stats.min_value), float(stats.max_value))


def _row_bytes(specs: Sequence[ColumnSpec]) -> int:
    """Bytes of one stored row, dense."""
    return sum((4 if c.dtype == "float32" else 8) * math.prod(c.shape) for c in specs)


def _collect_max_bytes() -> int:
    value = os.environ.get("CEREBRO_COLLECT_MAX_BYTES")
    if value is None:
        return COLLECT_MAX_BYTES
    try:
        return int(value)
    except ValueError:
        raise InvalidParamError(
            "The environment variable CEREBRO_COLLECT_MAX_BYTES must be an int number of bytes (0: always "
            f"write from the executors). Received: {value!r}."
        ) from None


def _collect_small(base: DataFrame, columns: Sequence[SourceColumn], max_bytes: int) -> pa.Table | None:
    """``base``'s rows with their positions, collected when Spark sizes its plan small (see
    :mod:`~cerebro_spark.data._collected`); None for the aggregate job instead."""
    if not is_small(base, max_bytes):
        return None
    try:
        table = collect_positioned(base, columns)
    except Exception as e:  # rows far larger than their files (constant columns compress very well)
        if "maxResultSize" not in str(e):
            raise
        logger.info("the rows exceed spark.driver.maxResultSize: summarizing them with a Spark job instead")
        return None
    logger.debug("collected %d rows (%d bytes) to summarize on the driver", table.num_rows, table.nbytes)
    return table


def _warn_if_large(specs: Sequence[ColumnSpec], train_rows: int, num_partitions: int) -> None:
    """Workers hold their partition in memory as dense arrays (sparse vectors too): warn when large."""
    row_bytes = _row_bytes(specs)
    per_worker = row_bytes * -(-train_rows // num_partitions)
    if per_worker > 4 << 30:
        logger.warning(
            "each worker will hold about %.1f GiB of training data in memory (dense: sparse vectors are "
            "stored dense, %d bytes per row); use more workers or fewer feature dimensions if that is "
            "too much",
            per_worker / 2**30,
            row_bytes,
        )


def _check_params(df: Any, store: Any, num_partitions: Any, seed: Any, reuse: Any) -> tuple[int, int | None]:
    """Check the non-column parameters; returns ``num_partitions`` and ``seed`` as Python ints."""
    if not isinstance(df, DataFrame):
        raise InvalidParamError(f"df must be a pyspark.sql.DataFrame. Received: {type(df).__name__}.")
    return check_params(store, num_partitions, seed, reuse)


def check_params(store: Any, num_partitions: Any, seed: Any, reuse: Any) -> tuple[int, int | None]:
    """Check the parameters every preparation takes but the data and columns; returns
    ``num_partitions`` and ``seed`` as Python ints."""
    if not isinstance(store, Store):
        raise InvalidParamError(
            f"store must be a cerebro_spark Store (see Store.create). Received: {type(store).__name__}."
        )
    if isinstance(num_partitions, bool) or not isinstance(num_partitions, Integral) or num_partitions < 1:
        raise InvalidParamError(
            f"num_partitions must be an int >= 1 (one per worker). Received: num_partitions={num_partitions!r}."
        )
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, Integral) or not 0 <= int(seed) < 2**63
    ):
        raise InvalidParamError(f"seed must be None or an int in [0, 2**63). Received: seed={seed!r}.")
    if not isinstance(reuse, bool):
        raise InvalidParamError(f"reuse must be a bool. Received: reuse={reuse!r}.")
    return int(num_partitions), None if seed is None else int(seed)


def _split_flag(validation: float | str | None, seed: int) -> list[Any]:
    if validation is None:
        return []
    if isinstance(validation, str):
        # Always the column's value, but non-deterministic for the optimizer: the write job's filters
        # on the flag must not be pushed below a repartition inside ``df``, which would change the
        # input partitions the aggregate counted (the split's rows are numbered from those counts).
        # (``rand() >= 0`` would not do: Spark knows its range and folds the guard away.)
        return [F.when(F.spark_partition_id() >= 0, col(validation)).alias(FLAG)]
    return [(F.rand(seed) < F.lit(validation)).alias(FLAG)]


def _params(
    columns: Sequence[SourceColumn],
    num_partitions: int,
    validation: float | str | None,
    seed: int | None,
    split_seed: int,
) -> dict[str, Any]:
    return {
        "feature_columns": [c.name for c in columns if c.role == "feature"],
        "label_columns": [c.name for c in columns if c.role == "label"],
        "sample_weight_column": next((c.name for c in columns if c.role == "weight"), None),
        "source_types": {c.name: c.spark_type for c in columns},
        "num_partitions": num_partitions,
        "validation": validation,
        "seed": seed,
        "split_seed": split_seed if isinstance(validation, float) else None,
    }


def _write(
    base: DataFrame | None,
    store: Store,
    root: str,
    specs: tuple[ColumnSpec, ...],
    summary: Summary,
    num_partitions: int,
    has_validation: bool,
    collect_max_bytes: int,
    collected: pa.Table | None = None,
) -> tuple[tuple[PartitionSpec, ...], tuple[PartitionSpec, ...]]:
    """Write the partitions and check them; returns the train and validation partitions.

    Rows ``collected`` before the summary (or held by the driver: ``base`` is then None, see
    :mod:`~cerebro_spark.data.prepare_local`) are routed and written by the driver. Otherwise, up to
    ``collect_max_bytes`` of stored data, the driver collects the routed rows (one Spark job, no
    shuffle, no Python workers) and writes the files itself; above, the write job runs on the
    executors. All three give the same files.
    """
    total = 2 * num_partitions if has_validation else num_partitions
    if collected is not None:
        routed_rows = routed_table(collected, len(specs), num_partitions)
        written = write_collected(store, root, routed_rows, specs, num_partitions, range(total))
        return _finish(store, root, specs, summary, num_partitions, total, written)
    if base is None:
        raise InvalidParamError("_write needs the rows: a DataFrame, or the table collected on the driver.")
    if has_validation:
        train_rows = base.filter(~F.col(FLAG))
        branches = [
            routing.route(train_rows, summary.train_counts, num_partitions, 0, total),
            routing.route(
                base.filter(F.col(FLAG)), summary.val_counts, num_partitions, num_partitions, total
            ),
        ]
        routed = functools.reduce(DataFrame.union, branches)
    else:
        routed = routing.route(base, summary.train_counts, num_partitions, 0, total)
    names = [s.name for s in specs]
    if _row_bytes(specs) * summary.rows <= collect_max_bytes:
        written = write_collected(
            store,
            root,
            collect_arrow(routing.with_target(routed, total, names)),
            specs,
            num_partitions,
            range(total),
        )
    else:
        rows = routing.repartition(routed, total, names)
        writer = PartitionWriter(store, root, specs, num_partitions)
        written = {
            r["partition"]: (r["key"], r["rows"]) for r in rows.mapInArrow(writer, RESULT_DDL).collect()
        }
    return _finish(store, root, specs, summary, num_partitions, total, written)


def _finish(
    store: Store,
    root: str,
    specs: tuple[ColumnSpec, ...],
    summary: Summary,
    num_partitions: int,
    total: int,
    written: dict[int, tuple[str, int]],
) -> tuple[tuple[PartitionSpec, ...], tuple[PartitionSpec, ...]]:
    """Write the partitions no row went to, check the counts; the train and validation partitions."""
    for index in set(range(total)) - set(written):  # Spark runs empty partitions too: a safety net
        key = partition_key(root, *split_of(index, num_partitions))
        written[index] = (key, write_partition(store, key, [], arrow_schema(specs), row_group_rows(specs)))
    parts = [PartitionSpec(*written[i]) for i in range(total)]
    train, val = tuple(parts[:num_partitions]), tuple(parts[num_partitions:])
    _check_written(store, root, train, summary.train_rows, "training")
    _check_written(store, root, val, summary.val_rows, "validation")
    return train, val


def _check_written(
    store: Store, root: str, parts: tuple[PartitionSpec, ...], expected: int, split: str
) -> None:
    sizes = [p.rows for p in parts]
    if sum(sizes) != expected:
        store.delete(root, recursive=True)
        raise DataError(
            f"The DataFrame gave {expected} {split} rows when counted and {sum(sizes)} when written: its "
            "content or partitioning is not deterministic (for example it reads files that changed, or "
            "depends on a non-deterministic shuffle). Cache or checkpoint it, or write it to Parquet "
            "first, and prepare it again."
        )
    if split == "training" and 0 in sizes:
        store.delete(root, recursive=True)
        raise DataError(
            f"Some training partitions came out empty ({sizes} rows) although the DataFrame has {expected} "
            "training rows: its partitioning is not deterministic. Cache or checkpoint it, or write it to "
            "Parquet first, and prepare it again."
        )
    if parts and sizes != routing.expected_sizes(expected, len(parts)):
        logger.warning("the %s partitions are not balanced as planned: %s rows", split, sizes)


def load_prepared(store: Store, fingerprint_or_root: str) -> DatasetSpec:
    """The :class:`DatasetSpec` of prepared data already in ``store``.

    Parameters
    ----------
    store : Store
        The Store that holds the prepared data.
    fingerprint_or_root : str
        A fingerprint (``DatasetSpec.fingerprint``) or the data's root key (``"data/<fingerprint>"``).

    Returns
    -------
    DatasetSpec

    Raises
    ------
    DataError
        If there is no complete preparation there (its ``_metadata.json`` is missing) or it has a
        metadata format newer than this version understands. The message lists the prepared data
        that the Store holds.

    Examples
    --------
    >>> spec = load_prepared(store, "data/0123abcd")  # doctest: +SKIP
    """
    if not isinstance(fingerprint_or_root, str) or not fingerprint_or_root.strip("/"):
        raise InvalidParamError(
            f"fingerprint_or_root must be a fingerprint or a key such as 'data/<fingerprint>'. "
            f"Received: {fingerprint_or_root!r}."
        )
    name = fingerprint_or_root.strip("/")
    root = name if "/" in name else layout.data_root(name)
    key = f"{root}/_metadata.json"
    if not store.exists(key):
        available = [d for d in store.listdir("data") if store.exists(f"data/{d}/_metadata.json")]
        listed = ", ".join(repr(f"data/{d}") for d in available) or "none"
        raise DataError(
            f"No prepared data at {root!r} in Store {store.url!r}: {key!r} is missing (never prepared, "
            f"or the preparation did not finish). Prepared data in this Store: {listed}."
        )
    try:
        return DatasetSpec.from_dict(store.read_json(key))
    except ValueError as e:
        raise DataError(str(e)) from e
