"""The one aggregate Spark job of data preparation, and the checks of its result.

The aggregate runs over the converted columns, grouped by input partition and split, and counts rows,
nulls, null array elements, NaN and infinite values and array lengths, and finds the range of the label
and weight values. The per-partition counts let the writer number the rows
of each split consecutively, so that its partitions differ by at most one row.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cerebro_spark.data._columns import Kind, SourceColumn, col
from cerebro_spark.errors import DataError

logger = logging.getLogger(__name__)

#: The column holding the split of a row: True for validation rows.
FLAG = "__cerebro_is_val__"
_PID = "__cerebro_pid__"
#: The largest integer that float32 (how features are stored) holds exactly, with all below it.
FLOAT32_EXACT = 2**24
_WIDE_INTEGERS = re.compile(r"\b(int|bigint)\b")  # Spark types whose values can exceed 2**24


@dataclass
class ColumnStats:
    """What the aggregate found in one column (``None``: not measured, or no rows)."""

    nulls: int = 0
    null_elements: int = 0
    min_len: int | None = None
    max_len: int | None = None
    min_inner: int | None = None
    max_inner: int | None = None
    non_finite: int = 0  # rows with a NaN or an infinite value (floating-point columns only)
    min_value: float | None = None  # labels and sample weights only
    max_value: float | None = None
    max_abs: float | None = None  # integral features only (float32 holds integers exactly up to 2**24)


@dataclass
class Summary:
    """The result of the aggregate: row counts per split and input partition, and column stats."""

    rows: int = 0
    flag_nulls: int = 0
    train_counts: dict[int, int] = field(default_factory=dict)
    val_counts: dict[int, int] = field(default_factory=dict)
    stats: dict[str, ColumnStats] = field(default_factory=dict)
    #: Sums of the sample weights per split (0.0 without a weight column).
    train_weight: float = 0.0
    val_weight: float = 0.0

    @property
    def train_rows(self) -> int:
        return sum(self.train_counts.values())

    @property
    def val_rows(self) -> int:
        return sum(self.val_counts.values())


def _non_finite(x: Column) -> Column:
    return F.isnan(x) | (F.abs(x) == F.lit(float("inf")))


def _array_non_finite(values: Column) -> Column:
    """Whether an array holds a NaN or an infinity, with native functions (no per-element lambda):
    Spark orders NaN above every number, so ``array_max`` is NaN or +inf, or ``array_min`` -inf."""
    high, low = F.array_max(values), F.array_min(values)
    return F.isnan(high) | (high == F.lit(float("inf"))) | (low == F.lit(float("-inf")))


def _stat_exprs(i: int, column: SourceColumn) -> list[Column]:
    c = col(column.name)
    exprs = [F.count_if(c.isNull()).alias(f"c{i}_nulls")]
    if column.dtype == "float32":  # the stored type: a double too large for float32 becomes infinite
        if column.kind is Kind.SCALAR:
            bad = _non_finite(c)
        elif column.kind is Kind.NESTED:
            bad = _array_non_finite(F.flatten(c))
        else:  # an array, or a vector (converted to an array)
            bad = _array_non_finite(c)
        exprs.append(F.count_if(bad).alias(f"c{i}_non_finite"))
    if column.role == "weight":
        return [*exprs, F.sum(c.cast("double")).alias("weight_sum"), F.min(c).alias(f"c{i}_min_value")]
    if (
        column.role == "feature"
        and _WIDE_INTEGERS.search(column.spark_type)
        and column.kind is not Kind.NESTED
    ):
        magnitude = F.abs(c) if column.kind is Kind.SCALAR else F.array_max(F.transform(c, F.abs))
        exprs.append(F.max(magnitude).alias(f"c{i}_max_abs"))
    if column.role == "label" and column.kind is not Kind.NESTED:
        low, high = (c, c) if column.kind is Kind.SCALAR else (F.array_min(c), F.array_max(c))
        exprs += [F.min(low).alias(f"c{i}_min_value"), F.max(high).alias(f"c{i}_max_value")]
    if column.kind is Kind.SCALAR:
        return exprs
    size = F.when(c.isNotNull(), F.size(c))
    exprs += [F.min(size).alias(f"c{i}_min_len"), F.max(size).alias(f"c{i}_max_len")]
    if column.kind is Kind.ARRAY:
        exprs.append(F.count_if(F.exists(c, lambda x: x.isNull())).alias(f"c{i}_null_elements"))
    elif column.kind is Kind.NESTED:
        has_null = F.exists(c, lambda a: a.isNull() | F.exists(a, lambda x: x.isNull()))
        sizes = F.transform(c, lambda a: F.when(a.isNotNull(), F.size(a)))
        exprs += [
            F.count_if(has_null).alias(f"c{i}_null_elements"),
            F.min(F.array_min(sizes)).alias(f"c{i}_min_inner"),
            F.max(F.array_max(sizes)).alias(f"c{i}_max_inner"),
        ]
    return exprs


def summarize(base: DataFrame, columns: Sequence[SourceColumn]) -> Summary:
    """Run the aggregate job over ``base``: the converted columns, plus :data:`FLAG` with validation."""
    aggs = [F.count(F.lit(1)).alias("rows")]
    for i, column in enumerate(columns):
        aggs += _stat_exprs(i, column)
    has_flag = FLAG in base.columns
    if has_flag:
        aggs.append(F.count_if(col(FLAG).isNull()).alias("flag_nulls"))
    keys = [F.spark_partition_id().alias(_PID)] + ([col(FLAG)] if has_flag else [])
    summary = Summary(stats={c.name: ColumnStats() for c in columns})
    for row in base.groupBy(*keys).agg(*aggs).collect():
        d = row.asDict()
        summary.rows += d["rows"]
        if d.get(FLAG) is not None:  # a null split flag is reported as a null in the split column
            counts = summary.val_counts if d[FLAG] else summary.train_counts
            counts[d[_PID]] = counts.get(d[_PID], 0) + d["rows"]
            if d[FLAG]:
                summary.val_weight += d.get("weight_sum") or 0.0
            else:
                summary.train_weight += d.get("weight_sum") or 0.0
        elif not has_flag:
            summary.train_counts[d[_PID]] = summary.train_counts.get(d[_PID], 0) + d["rows"]
            summary.train_weight += d.get("weight_sum") or 0.0
        for i, column in enumerate(columns):
            _merge(summary.stats[column.name], d, f"c{i}_")
        summary.flag_nulls += d.get("flag_nulls") or 0
    return summary


def _merge(stats: ColumnStats, d: dict[str, int | None], prefix: str) -> None:
    stats.nulls += d.get(prefix + "nulls") or 0
    stats.null_elements += d.get(prefix + "null_elements") or 0
    stats.non_finite += d.get(prefix + "non_finite") or 0
    for name, pick in (
        ("min_len", min),
        ("max_len", max),
        ("min_inner", min),
        ("max_inner", max),
        ("min_value", min),
        ("max_value", max),
        ("max_abs", max),
    ):
        value, old = d.get(prefix + name), getattr(stats, name)
        if value is not None:
            setattr(stats, name, value if old is None else pick(old, value))


def check_summary(
    summary: Summary, columns: Sequence[SourceColumn], validation_column: str | None
) -> dict[str, tuple[int, ...]]:
    """Raise :class:`DataError` for an empty DataFrame, nulls or ragged arrays; else the column shapes.

    ``validation_column`` names the split column, whose nulls are :attr:`Summary.flag_nulls`.
    """
    if summary.rows == 0:
        raise DataError("The DataFrame is empty: there are no rows to prepare. Expected at least one row.")
    with_nulls = [(name, s.nulls) for name, s in summary.stats.items() if s.nulls]
    if summary.flag_nulls and validation_column is not None and validation_column not in summary.stats:
        with_nulls.append((validation_column, summary.flag_nulls))
    if with_nulls:
        listed = ", ".join(f"{name!r} ({n} of {summary.rows} rows)" for name, n in with_nulls)
        raise DataError(
            f"Columns hold null values: {listed}. Expected no nulls: drop or fill those rows first "
            "(DataFrame.dropna or fillna)."
        )
    non_finite = [(name, s.non_finite) for name, s in summary.stats.items() if s.non_finite]
    if non_finite:
        listed = ", ".join(f"{name!r} ({n} of {summary.rows} rows)" for name, n in non_finite)
        raise DataError(
            f"Columns hold NaN or infinite values: {listed}. Expected finite numbers (as float32): drop, "
            "fill or clip those rows first (e.g. DataFrame.replace(float('nan'), None).dropna())."
        )
    for c in columns:
        largest = summary.stats[c.name].max_abs
        if largest is not None and largest > FLOAT32_EXACT:
            logger.warning(
                "feature column %r holds integers up to %.0f, above 2**24: stored as float32, they lose "
                "precision (16777217 becomes 16777216); scale them, or index them if they are ids",
                c.name,
                largest,
            )
        low = summary.stats[c.name].min_value
        if c.role == "weight" and low is not None and not low >= 0:
            raise DataError(
                f"Sample weight column {c.name!r} holds negative weights (the smallest is {low}). "
                "Expected weights >= 0."
            )
    return {c.name: _shape(c, summary.stats[c.name]) for c in columns}


def _shape(column: SourceColumn, s: ColumnStats) -> tuple[int, ...]:
    what = f"{column.role.capitalize()} column {column.name!r}"
    if column.kind is Kind.SCALAR:
        return ()
    if s.null_elements:
        raise DataError(
            f"{what} holds arrays with null elements in {s.null_elements} rows. "
            "Expected arrays of numbers only: fill or drop those rows first."
        )
    outer = _length(what, "arrays", s.min_len, s.max_len)
    if column.kind is not Kind.NESTED:
        return (outer,)
    return (outer, _length(what, "inner arrays", s.min_inner, s.max_inner))


def _length(what: str, arrays: str, low: int | None, high: int | None) -> int:
    if low is None or high is None or high == 0:
        raise DataError(f"{what} holds empty {arrays}. Expected {arrays} of at least one element.")
    if low != high:
        raise DataError(
            f"{what} holds {arrays} of different lengths: from {low} to {high} elements. "
            "Expected the same length on every row (pad or truncate them first)."
        )
    return high


def check_split(
    summary: Summary, num_partitions: int, validation: float | str | None, seed: int | None
) -> None:
    """Raise :class:`DataError` when the training split is smaller than ``num_partitions`` or a
    validation split is empty."""
    train, val = summary.train_rows, summary.val_rows
    if isinstance(validation, float) and val == 0:
        raise DataError(
            f"validation={validation} left no validation rows out of {summary.rows} rows (seed={seed}). "
            "Use a larger fraction, more data, or validation=None."
        )
    if isinstance(validation, str) and val == 0:
        raise DataError(
            f"Validation column {validation!r} is True on no row: no validation rows out of "
            f"{summary.rows}. Expected at least one True value."
        )
    if train < num_partitions:
        held = f", {val} of them held out for validation" if validation is not None else ""
        raise DataError(
            f"Only {train} training rows for num_partitions={num_partitions} workers (the DataFrame has "
            f"{summary.rows} rows{held}). Expected at least one training row per partition: use fewer "
            "workers, more data or less validation data."
        )
