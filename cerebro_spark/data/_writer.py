"""Writing prepared partitions as Parquet files through the Store.

Imports only pyarrow, the Store and the dataset spec, so that shipping :class:`PartitionWriter` to an
executor pulls in nothing heavy. Each output partition of the write job becomes exactly one file.
:func:`write_collected` writes the same files on the driver from rows collected as Arrow (small data).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cerebro_spark.data.spec import ColumnSpec
from cerebro_spark.store.base import Store

logger = logging.getLogger(__name__)

#: Target size of one Parquet row group: small enough to stream, large enough to read fast.
ROW_GROUP_BYTES = 32 << 20

#: What the write job returns per partition (Spark DDL, and the matching Arrow schema).
RESULT_DDL = "partition int, rows long, key string"
RESULT_SCHEMA = pa.schema([("partition", pa.int32()), ("rows", pa.int64()), ("key", pa.string())])

_ARROW_TYPES = {"float32": pa.float32(), "int64": pa.int64()}


def arrow_schema(columns: Sequence[ColumnSpec]) -> pa.Schema:
    """The Arrow schema of a prepared file: one (nested) list level per dimension of a column's shape."""
    fields = []
    for column in columns:
        arrow_type = _ARROW_TYPES[column.dtype]
        for _ in column.shape:
            arrow_type = pa.list_(arrow_type)
        fields.append(pa.field(column.name, arrow_type, nullable=False))
    return pa.schema(fields)


def row_group_rows(columns: Sequence[ColumnSpec]) -> int:
    """Rows per row group so that a group holds about :data:`ROW_GROUP_BYTES` of values."""
    row_bytes = sum(8 * math.prod(c.shape) for c in columns)  # 8: the wider of float32 and int64
    return max(1, ROW_GROUP_BYTES // max(1, row_bytes))


def partition_key(root: str, split: str, index: int) -> str:
    """The Store key of one prepared partition: ``<root>/<split>/part-00003.parquet``."""
    return f"{root}/{split}/part-{index:05d}.parquet"


def split_of(index: int, num_train: int) -> tuple[str, int]:
    """The split and the partition number within it of output partition ``index`` of the write job."""
    return ("train", index) if index < num_train else ("val", index - num_train)


def write_partition(
    store: Store, key: str, batches: Iterable[pa.RecordBatch], schema: pa.Schema, group_rows: int
) -> int:
    """Write ``batches`` as one Parquet file at ``key`` (atomically) and return its row count.

    The batches' columns are those of ``schema``, in its order; their names do not matter.

    Batches are buffered up to ``group_rows`` rows, so memory stays near one row group. With no rows,
    the file holds the schema and no row group.
    """
    total = 0
    with store.atomic_writer(key) as f, pq.ParquetWriter(f, schema) as writer:
        buffered: list[pa.RecordBatch] = []
        count = 0
        for batch in batches:
            if batch.num_rows == 0:
                continue
            buffered.append(batch)
            count += batch.num_rows
            if count >= group_rows:
                total += _flush(writer, buffered, schema, group_rows)
                buffered, count = [], 0
        if buffered:
            total += _flush(writer, buffered, schema, group_rows)
    return total


def _flush(writer: pq.ParquetWriter, batches: list[pa.RecordBatch], schema: pa.Schema, rows: int) -> int:
    table = pa.Table.from_batches(batches).rename_columns(schema.names).cast(schema)  # by position
    writer.write_table(table, row_group_size=rows)
    return int(table.num_rows)


@dataclass(frozen=True)
class PartitionWriter:
    """The ``mapInArrow`` function of the write job: partition ``i`` of ``2 * num_train`` (or
    ``num_train`` without validation) becomes ``train/part-i`` or ``val/part-(i - num_train)``.

    Holds plain values and a Store (which pickles by value) only.
    """

    store: Store
    root: str
    columns: tuple[ColumnSpec, ...]
    num_train: int

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext  # on the executor, inside its Spark task

        context = TaskContext.get()
        if context is None:
            raise RuntimeError("PartitionWriter must run inside a Spark task (DataFrame.mapInArrow).")
        index = context.partitionId()
        key = partition_key(self.root, *split_of(index, self.num_train))
        schema = arrow_schema(self.columns)
        rows = write_partition(self.store, key, batches, schema, row_group_rows(self.columns))
        logger.info("wrote %d rows to %s", rows, key)
        yield pa.RecordBatch.from_pydict(
            {"partition": [index], "rows": [rows], "key": [key]}, schema=RESULT_SCHEMA
        )


def write_collected(
    store: Store,
    root: str,
    table: pa.Table,
    columns: Sequence[ColumnSpec],
    num_train: int,
    targets: Sequence[int],
) -> dict[int, tuple[str, int]]:
    """Write every output partition from ``table``, rows collected on the driver; returns
    ``{partition: (key, rows)}`` as the write job does.

    ``table`` holds the stored columns (by position), then the output partition of each row, then the
    row's number in its split: partition ``p`` gets the rows whose partition is ``p``, in number order,
    which is what the write job's repartition and ``sortWithinPartitions`` give. ``targets`` lists the
    output partitions (all are written, empty ones included).
    """
    data = table.select(list(range(len(columns))))
    partition, number = table.column(len(columns)), table.column(len(columns) + 1)
    schema, group_rows = arrow_schema(columns), row_group_rows(columns)
    written = {}
    for index in targets:
        mine = pc.equal(partition, index)
        rows = data.filter(mine)
        order = pc.sort_indices(number.filter(mine))
        key = partition_key(root, *split_of(index, num_train))
        written[index] = (key, write_partition(store, key, rows.take(order).to_batches(), schema, group_rows))
    logger.info("wrote %d rows in %d partitions under %s from the driver", table.num_rows, len(targets), root)
    return written
