"""Reading prepared partitions on a worker: Parquet -> numpy arrays, with pyarrow and numpy only.

A worker reads its partition once (:class:`PartitionCache`) and, for every sub-epoch, trains on a
permutation of it drawn from :func:`unit_seed`, so each unit's data order depends on the run's seed,
the model, the epoch and the partition, never on timing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cerebro_spark.data._petastorm import check_columns, import_petastorm, read_partition_petastorm
from cerebro_spark.data.partition import PartitionData
from cerebro_spark.data.spec import ColumnSpec, DatasetSpec, PartitionSpec
from cerebro_spark.errors import DataError, InvalidParamError
from cerebro_spark.store.base import Store

logger = logging.getLogger(__name__)

_SPLITS = ("train", "val")
_IS_LIST = (pa.types.is_list, pa.types.is_large_list, pa.types.is_fixed_size_list)


def check_reader(reader: str, dataset: DatasetSpec | None = None) -> None:
    """On the driver, before any job: whether workers can read with ``reader`` ('pyarrow' always can;
    'petastorm' needs Petastorm installed) and, given the prepared ``dataset``, read its columns.

    Raises
    ------
    MissingDependencyError
        If ``reader`` is 'petastorm' and Petastorm is not installed.
    InvalidParamError
        If Petastorm cannot read a column of ``dataset`` (rows of two or more dimensions).
    """
    if reader != "petastorm":
        return
    import_petastorm()
    if dataset is not None:
        check_columns(dataset)


def read_partition(store: Store, spec: DatasetSpec, split: str, index: int) -> PartitionData:
    """Read one prepared partition into numpy arrays.

    Parameters
    ----------
    store : Store
        The Store holding the prepared data.
    spec : DatasetSpec
        The prepared data's description.
    split : {"train", "val"}
        Which split.
    index : int
        The partition number, in ``[0, spec.num_partitions)``.

    Returns
    -------
    PartitionData

    Raises
    ------
    InvalidParamError
        For an unknown split or an index out of range.
    DataError
        If the file is missing or disagrees with the spec (row count, columns, types, lengths, nulls).

    Examples
    --------
    >>> data = read_partition(store, spec, "train", 0)  # doctest: +SKIP
    >>> model.fit(data.x(), data.y(), epochs=1)  # doctest: +SKIP
    """
    part = _partition(spec, split, index)
    if spec.reader == "petastorm":  # the optional reader: its own module, its own environment
        return read_partition_petastorm(store, spec, part)
    weight = (spec.weight,) if spec.weight is not None else ()
    table = _read_table(store, part, [c.name for c in spec.features + spec.labels + weight])
    if table.num_rows != part.rows:
        raise DataError(
            f"Prepared file {part.key!r} has {table.num_rows} rows; its metadata says {part.rows}. "
            "The prepared data was changed after preparation: prepare it again (reuse=False)."
        )
    return PartitionData(
        features=tuple(_to_numpy(table.column(c.name), c, part) for c in spec.features),
        labels=tuple(_to_numpy(table.column(c.name), c, part) for c in spec.labels),
        rows=part.rows,
        weights=_to_numpy(table.column(weight[0].name), weight[0], part) if weight else None,
    )


def _partition(spec: DatasetSpec, split: str, index: int) -> PartitionSpec:
    if split not in _SPLITS:
        raise InvalidParamError(f"split must be 'train' or 'val'. Received: split={split!r}.")
    parts = spec.train if split == "train" else spec.val
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(parts):
        raise InvalidParamError(
            f"index must be an int in [0, {len(parts)}) for the {split!r} split of {spec.root!r}. "
            f"Received: index={index!r}."
        )
    return parts[index]


def _read_table(store: Store, part: PartitionSpec, names: list[str]) -> pa.Table:
    try:
        path = store.local_path(part.key)
        if path is not None:
            return pq.read_table(path, columns=names)
        with store.open_read(part.key) as f:
            return pq.read_table(f, columns=names)
    except FileNotFoundError as e:
        raise DataError(
            f"Prepared file {part.key!r} is missing from Store {store.url!r}: prepare the data again."
        ) from e
    except (pa.ArrowInvalid, KeyError) as e:
        raise DataError(
            f"Prepared file {part.key!r} cannot be read as columns {names}: {e}. "
            "It does not match its metadata: prepare the data again (reuse=False)."
        ) from e


def _to_numpy(column: pa.ChunkedArray, spec: ColumnSpec, part: PartitionSpec) -> np.ndarray:
    """A column of lists nested ``len(spec.shape)`` deep -> one array ``(rows, *shape)``, no row loop.

    Chunk by chunk (a row group each): combining the chunks first would put every value of the
    partition behind one list's int32 offsets, which overflow past 2**31 values (8 GiB of float32).
    """
    arrays = [_chunk_to_numpy(chunk, spec, part) for chunk in column.chunks]
    if len(arrays) == 1:
        return arrays[0]
    return np.concatenate(arrays) if arrays else np.empty((0, *spec.shape), dtype=spec.dtype)


def _chunk_to_numpy(values: pa.Array, spec: ColumnSpec, part: PartitionSpec) -> np.ndarray:
    rows = len(values)
    for depth, size in enumerate(spec.shape):
        if not any(is_list(values.type) for is_list in _IS_LIST):
            _mismatch(part, spec, f"a list type at depth {depth}, found {values.type}")
        if values.null_count:
            _mismatch(part, spec, f"no null lists at depth {depth}, found {values.null_count}")
        lengths = pc.min_max(pc.list_value_length(values))
        if len(values) and (lengths["min"].as_py() != size or lengths["max"].as_py() != size):
            found = f"{lengths['min'].as_py()} to {lengths['max'].as_py()}"
            _mismatch(part, spec, f"lists of {size} elements at depth {depth}, found {found}")
        values = values.flatten()
    if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):
        _mismatch(part, spec, f"numbers, found {values.type}")
    if values.null_count:
        _mismatch(part, spec, f"no nulls, found {values.null_count}")
    array: np.ndarray = np.asarray(values.to_numpy(zero_copy_only=False)).astype(spec.dtype, copy=False)
    return array.reshape((rows, *spec.shape))


def _mismatch(part: PartitionSpec, spec: ColumnSpec, what: str) -> None:
    raise DataError(
        f"Column {spec.name!r} of prepared file {part.key!r} does not match its metadata "
        f"(dtype {spec.dtype}, shape {spec.shape}): expected {what}. Prepare the data again (reuse=False)."
    )


def unit_seed(run_seed: int, model_id: str, epoch: int, partition: int) -> int:
    """The shuffle seed of one unit (model, epoch, partition) of a run: stable across processes.

    Parameters
    ----------
    run_seed : int
        The seed of the run.
    model_id : str
        The model's id.
    epoch : int
        The epoch (its number as the driver counts it).
    partition : int
        The partition index.

    Returns
    -------
    int
        A non-negative 63-bit integer: the first 8 bytes of a sha256 of the four values.

    Examples
    --------
    >>> unit_seed(7, "m0", 0, 1) == unit_seed(7, "m0", 0, 1)
    True
    >>> unit_seed(7, "m0", 0, 1) != unit_seed(7, "m0", 1, 1)
    True
    """
    text = json.dumps(["cerebro-unit", int(run_seed), str(model_id), int(epoch), int(partition)])
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> 1


class PartitionCache:
    """Partitions a worker has read, kept in memory for later sub-epochs.

    Keyed by ``(spec.fingerprint, split, index)``. Thread-safe: concurrent readers of one key read it
    once.

    Examples
    --------
    >>> cache = PartitionCache()
    >>> data = cache.get_or_read(store, spec, "train", 0)  # doctest: +SKIP
    """

    def __init__(self) -> None:
        self._data: dict[tuple[str, str, int], PartitionData] = {}
        self._lock = threading.Lock()

    def get_or_read(self, store: Store, spec: DatasetSpec, split: str, index: int) -> PartitionData:
        """The cached partition, read with :func:`read_partition` on first use."""
        key = (spec.fingerprint, split, index)
        with self._lock:
            found = self._data.get(key)
            if found is None:
                found = read_partition(store, spec, split, index)
                self._data[key] = found
                logger.info(
                    "cached %s partition %d of %s: %d rows, %.1f MiB",
                    split,
                    index,
                    spec.root,
                    found.rows,
                    found.nbytes / 2**20,
                )
            return found

    def get(self, key: tuple[str, str, int], default: Any = None) -> Any:
        """The cached partition for ``key``, or ``default``."""
        with self._lock:
            return self._data.get(key, default)

    def keep_only(self, fingerprint: str, index: int) -> None:
        """Forget every partition but those of number ``index`` of dataset ``fingerprint``."""
        with self._lock:
            for key in [k for k in self._data if k[0] != fingerprint or k[2] != index]:
                del self._data[key]

    def evict(self, fingerprint: str | None = None) -> None:
        """Forget the partitions of one prepared dataset, or (``None``) all of them."""
        with self._lock:
            for key in [k for k in self._data if fingerprint is None or k[0] == fingerprint]:
                del self._data[key]

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._data

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    @property
    def nbytes(self) -> int:
        """Bytes held by all cached partitions."""
        with self._lock:
            return sum(d.nbytes for d in self._data.values())
