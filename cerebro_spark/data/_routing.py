"""Route every row of a split to an exact output partition, so that partitions differ by at most one row.

Spark's ``repartition(n)`` is round-robin *per input partition*, each starting at a random position, so
its output partitions can differ by as many rows as there are input partitions (measured: 101/99/101
rows for 301 rows in 7 input partitions). Here the rows of a split get consecutive global numbers
``g`` (the per-input-partition counts of the aggregate give each input partition's offset, and
``monotonically_increasing_id`` the position within it), and row ``g`` goes to partition ``g % n``.

To send a row to partition ``t`` with a plain hash repartition, it carries a key chosen so that Spark's
hash partitioning (``pmod(murmur3(key, 42), n)``) maps it to ``t``. Should a future Spark hash
differently, rows are still written exactly once, only less evenly: :func:`expected_sizes` lets the
caller notice it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cerebro_spark.data._columns import col

#: Columns added by :func:`route`: the row's global number in its split, and its partition key.
INDEX = "__cerebro_index__"
KEY = "__cerebro_key__"
_MID = "__cerebro_mid__"
_POSITION_BITS = 33  # monotonically_increasing_id: partition index << 33 | position in the partition
_MASK32 = 0xFFFFFFFF


def _rotl(value: int, bits: int) -> int:
    return ((value << bits) | (value >> (32 - bits))) & _MASK32


def murmur3_int(value: int, seed: int = 42) -> int:
    """Spark's ``hash()`` of an ``int`` column (``Murmur3_x86_32.hashInt``) as a signed 32-bit int."""
    k = _rotl((value & _MASK32) * 0xCC9E2D51 & _MASK32, 15) * 0x1B873593 & _MASK32
    h = (_rotl(seed ^ k, 13) * 5 + 0xE6546B64) & _MASK32
    h ^= 4
    h ^= h >> 16
    h = h * 0x85EBCA6B & _MASK32
    h ^= h >> 13
    h = h * 0xC2B2AE35 & _MASK32
    h ^= h >> 16
    return h - (1 << 32) if h >= 1 << 31 else h


@functools.lru_cache(maxsize=32)
def partition_keys(num_partitions: int) -> tuple[int, ...]:
    """``keys[t]``: a small int that Spark's hash partitioning into ``num_partitions`` sends to ``t``."""
    keys: dict[int, int] = {}
    candidate = 0
    while len(keys) < num_partitions:
        keys.setdefault(murmur3_int(candidate) % num_partitions, candidate)  # Python's % is pmod
        candidate += 1
    return tuple(keys[t] for t in range(num_partitions))


def offsets(counts: dict[int, int]) -> list[int]:
    """Per input partition index, the number of rows of the split in the input partitions before it."""
    out, total = [], 0
    for pid in range(max(counts, default=-1) + 1):
        out.append(total)
        total += counts.get(pid, 0)
    return out


def route(rows: DataFrame, counts: dict[int, int], num_partitions: int, first: int, total: int) -> DataFrame:
    """``rows`` (one split, in the input's partitioning) with :data:`INDEX` and :data:`KEY` added.

    Row ``g`` of the split goes to output partition ``first + g % num_partitions`` of a hash repartition
    into ``total`` partitions; ``counts`` are the split's rows per input partition.
    """
    keys = partition_keys(total)
    start = F.array(*[F.lit(o).cast("long") for o in offsets(counts)] or [F.lit(0).cast("long")])
    mid = F.col(_MID)
    pid = F.shiftright(mid, _POSITION_BITS).cast("int")
    index = F.try_element_at(start, pid + 1) + mid.bitwiseAND(F.lit((1 << _POSITION_BITS) - 1))
    target = (F.pmod(F.col(INDEX), F.lit(num_partitions)) + first).cast("int")
    key_of = F.array(*[F.lit(k).cast("int") for k in keys])
    return (
        rows.withColumn(_MID, F.monotonically_increasing_id())
        .withColumn(INDEX, index)
        .withColumn(KEY, F.try_element_at(key_of, target + 1))
        .drop(_MID)
    )


def with_target(routed: DataFrame, total: int, columns: Sequence[str]) -> DataFrame:
    """``routed`` as :func:`repartition` gives it, without the shuffle: the columns ``c0, c1...``, then each
    row's output partition (from its :data:`KEY`) and its :data:`INDEX`, for a driver that collects them."""
    pairs = [F.lit(part) for key, target in _targets(total) for part in (key, target)]
    target = F.element_at(F.create_map(*pairs), F.col(KEY)).cast("int").alias("target")
    renamed = [col(name).alias(f"c{i}") for i, name in enumerate(columns)]
    return routed.select(*renamed, target, F.col(INDEX))


def _targets(total: int) -> list[tuple[int, int]]:
    """``(key, partition)`` pairs: the inverse of :func:`partition_keys`."""
    return [(key, target) for target, key in enumerate(partition_keys(total))]


def expected_sizes(rows: int, num_partitions: int) -> list[int]:
    """The sizes of ``num_partitions`` partitions holding ``rows`` rows round-robin."""
    return [rows // num_partitions + (1 if t < rows % num_partitions else 0) for t in range(num_partitions)]


def repartition(routed: DataFrame, total: int, columns: Sequence[str]) -> DataFrame:
    """Hash-repartition ``routed`` on :data:`KEY` into ``total`` partitions, rows in index order.

    The columns come out renamed ``c0, c1...`` in the order of ``columns``: ``mapInArrow`` cannot take
    names with dots (the writer restores the names by position).
    """
    renamed = [col(name).alias(f"c{i}") for i, name in enumerate(columns)]
    return routed.repartition(total, F.col(KEY)).sortWithinPartitions(INDEX).select(*renamed)
