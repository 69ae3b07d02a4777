"""The optional Petastorm reader (``reader="petastorm"``): one prepared partition through ``make_batch_reader``.

It imports Petastorm lazily (so does :mod:`cerebro_spark.data.petastorm_dataset`, for a Petastorm dataset's
Unischema). Petastorm 0.13.1 reads only with pyarrow < 15 and numpy < 2, so it has an extra and an
environment of its own (docs/petastorm.md). It reads the partition's Parquet file row group by row group, in
file order, so it gives the same rows in the same order as the default pyarrow reader; the worker then
shuffles them per unit as usual.
"""

from __future__ import annotations

import re
import threading
import warnings
from typing import Any

import numpy as np

from cerebro_spark.data.partition import PartitionData
from cerebro_spark.data.spec import ColumnSpec, DatasetSpec, PartitionSpec
from cerebro_spark.errors import DataError, InvalidParamError, MissingDependencyError
from cerebro_spark.store.base import Store

INSTALL_HINT = (
    "pip install 'cerebro_spark[petastorm,tf]' in an environment of its own (Petastorm 0.13.1 needs "
    "pyarrow < 15 and numpy < 2, so pyspark 3.5: see docs/petastorm.md)"
)


_WARNINGS_LOCK = threading.Lock()


def import_petastorm() -> Any:
    """The ``petastorm`` module, or a :class:`MissingDependencyError` naming the ``petastorm`` extra."""
    try:
        import petastorm
    except ImportError as err:
        raise MissingDependencyError(
            f"reader='petastorm' needs Petastorm, which is not installed: {INSTALL_HINT}. "
            "Or use the default reader='pyarrow'."
        ) from err
    return petastorm


def check_columns(spec: DatasetSpec) -> None:
    """Petastorm's batch reader reads scalar and 1-d array columns only: a clear error for the others.

    Raises
    ------
    InvalidParamError
        Naming the first column whose rows have two or more dimensions.
    """
    for column in spec.features + spec.labels:
        if len(column.shape) > 1:
            raise InvalidParamError(
                f"reader='petastorm' reads scalar and array columns only (Petastorm's make_batch_reader "
                f"skips lists of lists), but column {column.name!r} has rows of shape {column.shape}. "
                "Use reader='pyarrow' (the default) for it."
            )


def read_partition_petastorm(store: Store, spec: DatasetSpec, part: PartitionSpec) -> PartitionData:
    """Read one prepared partition with ``petastorm.make_batch_reader``.

    Parameters
    ----------
    store : Store
        The Store holding the prepared data (its filesystem is Petastorm's, through fsspec).
    spec : DatasetSpec
        The prepared data's description: which columns, their dtypes and shapes.
    part : PartitionSpec
        The partition (one Parquet file) to read.

    Returns
    -------
    PartitionData
        The rows in file order, as :func:`cerebro_spark.data.reader.read_partition` returns them.

    Raises
    ------
    MissingDependencyError
        If Petastorm is not installed.
    InvalidParamError
        For a column whose rows have two or more dimensions (see :func:`check_columns`).
    DataError
        If the file is missing or disagrees with the spec.
    """
    check_columns(spec)
    weight = (spec.weight,) if spec.weight is not None else ()
    columns = spec.features + spec.labels + weight
    chunks: dict[str, list[np.ndarray]] = {c.name: [] for c in columns}
    if part.rows:  # an empty validation file has no row group for Petastorm to read
        for batch in _batches(store, part, [c.name for c in columns]):
            for c in columns:
                chunks[c.name].append(np.asarray(batch[c.name]))
    arrays = {c.name: _to_array(chunks[c.name], c, part) for c in columns}
    return PartitionData(
        features=tuple(arrays[c.name] for c in spec.features),
        labels=tuple(arrays[c.name] for c in spec.labels),
        rows=part.rows,
        weights=arrays[weight[0].name] if weight else None,
    )


def _batches(store: Store, part: PartitionSpec, names: list[str]) -> list[dict[str, Any]]:
    petastorm = import_petastorm()
    if not store.exists(part.key):  # Petastorm would say "Passed non-file path"
        raise DataError(
            f"Prepared file {part.key!r} is missing from Store {store.url!r}: prepare the data again."
        )
    local = store.local_path(part.key)
    url = f"file://{local}" if local is not None else f"{store.url.rstrip('/')}/{part.key}"
    # Petastorm's fsspec options are the Store's (credentials of s3://, gs://... Stores).
    options = store.storage_options or None
    fields = [f"^{re.escape(n)}$" for n in names]
    # catch_warnings swaps the process-wide filters: two readers in one process (LocalBackend's worker
    # threads) must not interleave, or one restores the filters while the other still reads.
    with _WARNINGS_LOCK, warnings.catch_warnings():
        # Petastorm 0.13.1 calls pyarrow 14 APIs that warn of their removal: nothing a user can act on.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        # One reader thread, row groups in file order, one pass: the rows of the pyarrow reader.
        with petastorm.make_batch_reader(
            [url],
            schema_fields=fields,
            reader_pool_type="dummy",
            shuffle_row_groups=False,
            shuffle_rows=False,
            num_epochs=1,
            storage_options=options,
        ) as reader:
            return [batch._asdict() for batch in reader]


def _to_array(chunks: list[np.ndarray], column: ColumnSpec, part: PartitionSpec) -> np.ndarray:
    """Petastorm's per-row-group arrays -> one ``(rows, *shape)`` array of the column's dtype."""
    if not chunks:
        return np.empty((0, *column.shape), dtype=column.dtype)
    array = np.concatenate(chunks)
    if array.shape != (part.rows, *column.shape) or not np.issubdtype(array.dtype, np.number):
        raise DataError(
            f"Column {column.name!r} of prepared file {part.key!r} does not match its metadata "
            f"(dtype {column.dtype}, shape {column.shape}): Petastorm read {array.dtype} values of shape "
            f"{array.shape[1:]} in {array.shape[0]} rows, expected {part.rows}. Prepare the data again "
            "(reuse=False)."
        )
    return array.astype(column.dtype, copy=False)
