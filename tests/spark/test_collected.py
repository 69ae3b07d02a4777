"""Small data collected first: the driver's summary equals the aggregate job's, and which plans are small."""

from __future__ import annotations

import pytest

from cerebro_spark.data import _collected, _summary
from cerebro_spark.data._columns import resolve_columns, with_converted
from cerebro_spark.data.prepare import _split_flag

pytestmark = pytest.mark.spark

INF, NAN = float("inf"), float("nan")

DDL = (
    "id long, x double, big long, arr array<double>, ints array<int>, nested array<array<double>>, "
    "y_int int, y_arr array<double>, w double, v boolean"
)
ROWS = [  # every kind of column, with nulls, NaN, infinities, ragged and null (inner) arrays
    (0, 1.0, 2**30, [1.0, 2.0], [1, -7], [[1.0, 2.0], [3.0, 4.0]], 3, [0.0, 1.0], 0.5, True),
    (1, NAN, -(2**31), [1.0, None], [2, 3], [[1.0], None], -2, [2.0, 5.0], 1.0, False),
    (2, None, 4, None, None, None, None, None, None, None),
    (3, INF, 0, [INF, 1.0, 2.0], [4], [[INF, 1.0], None], 7, [1.0, 1.0], 2.0, False),
    (4, 2.0, 5, [-INF, 0.0], [5, 6], [[NAN, 1.0], [2.0, None]], 0, [3.0, 4.0], 0.0, True),
    (5, 3.0, 6, [0.5, 0.5], [7, 8], [[], [1.0, 2.0]], 1, [0.0, 9.0], -1.0, False),
]


def _summaries(spark, features, labels, weight=None, validation=None):
    df = spark.sparkContext.parallelize(ROWS, 3).toDF(DDL)  # rows in 3 input partitions
    columns = resolve_columns(df.schema, features, labels, weight)
    base = with_converted(df, columns, _split_flag(validation, 5))
    by_job = _summary.summarize(base, columns)
    by_driver = _collected.summarize_table(_collected.collect_positioned(base, columns), columns)
    return by_job, by_driver


@pytest.mark.parametrize(
    ("features", "labels", "weight", "validation"),
    [
        (["x", "big"], ["id"], None, None),
        (["arr", "ints"], ["y_int"], "w", "v"),
        (["nested"], ["y_arr"], None, 0.5),
        (["arr", "nested", "x"], ["y_int", "y_arr"], "w", None),
    ],
)
def test_driver_summary_equals_the_aggregate_jobs(spark, features, labels, weight, validation):
    by_job, by_driver = _summaries(spark, features, labels, weight, validation)
    assert by_driver == by_job
    assert by_job.rows == len(ROWS)


def test_driver_summary_counts_what_the_checks_need(spark):
    _, summary = _summaries(spark, ["x", "nested"], ["y_arr"], "w", "v")
    assert summary.flag_nulls == 1 and summary.train_rows + summary.val_rows == 5
    assert summary.stats["x"].nulls == 1 and summary.stats["x"].non_finite == 2
    assert summary.stats["nested"].null_elements == 3  # a null inner array (2 rows) or element (1)
    assert summary.stats["nested"].non_finite == 1  # row 4 (NaN); row 3's infinity sits beside a null array
    assert (summary.stats["nested"].min_inner, summary.stats["nested"].max_inner) == (0, 2)
    assert (summary.stats["y_arr"].min_value, summary.stats["y_arr"].max_value) == (0.0, 9.0)
    assert summary.stats["w"].min_value == -1.0
    assert (summary.train_weight, summary.val_weight) == (2.0, 0.5)  # 1.0 + 2.0 - 1.0; 0.5 + 0.0


def test_parquet_files_and_local_rows_are_small_other_plans_are_not(spark, tmp_path):
    path = str(tmp_path / "rows.parquet")
    spark.range(1000).selectExpr("id", "cast(id as double) as x").write.parquet(path)
    assert _collected.is_small(spark.read.parquet(path), 64 << 20)
    assert not _collected.is_small(spark.read.parquet(path), 1000)  # the margin: 8x the files' size
    assert _collected.is_small(spark.range(100).selectExpr("id", "id * 2 as x"), 64 << 20)
    rdd_rows = spark.sparkContext.parallelize([(1, 2.0)]).toDF("id long, x double")
    assert not _collected.is_small(rdd_rows, 64 << 20)  # Spark cannot size rows from Python RDDs
