"""Data the driver holds (pandas, Arrow, Parquet) prepared without Spark: the same files, checks and
errors as the Spark preparation of the same rows, and reuse by content."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cerebro_spark.data.prepare import prepare_data
from cerebro_spark.data.prepare_local import prepare_local, to_arrow
from cerebro_spark.data.reader import read_partition
from cerebro_spark.errors import DataError, InvalidParamError

pytestmark = pytest.mark.spark


@pytest.fixture
def frame():
    rng = np.random.default_rng(4)
    n = 203
    return pd.DataFrame(
        {
            "x": [rng.standard_normal(3).astype(np.float32) for _ in range(n)],
            "grid": [rng.standard_normal((2, 2)).tolist() for _ in range(n)],
            "s": rng.random(n),
            "y": rng.integers(0, 4, n),
            "w": rng.random(n) + 0.5,
            "is_val": rng.random(n) < 0.25,
        }
    )


def partitions(store, spec):
    out = []
    for split, parts in (("train", spec.train), ("val", spec.val)):
        for i in range(len(parts)):
            data = read_partition(store, spec, split, i)
            out.append(
                ([np.asarray(a) for a in data.features], [np.asarray(a) for a in data.labels], data.weights)
            )
    return out


def test_the_same_rows_give_the_same_files_as_spark(spark, store, frame):
    kwargs = dict(
        feature_columns=["x", "grid", "s"], label_columns=["y"], num_partitions=3, validation="is_val",
        seed=1, sample_weight_column="w",
    )  # fmt: skip
    local = prepare_local(frame, store, **kwargs)
    rows = frame.assign(x=frame["x"].map(lambda a: [float(v) for v in a])).to_dict("records")
    schema = "x array<float>, grid array<array<double>>, s double, y long, w double, is_val boolean"
    sparked = prepare_data(spark.createDataFrame(rows, schema).coalesce(1), store, **kwargs)
    assert local.fingerprint != sparked.fingerprint  # two sources, two entries in the Store
    assert [p.rows for p in local.train] == [p.rows for p in sparked.train]
    assert [p.rows for p in local.val] == [p.rows for p in sparked.val]
    assert (local.features, local.labels, local.weight) == (sparked.features, sparked.labels, sparked.weight)
    assert local.train_weight == pytest.approx(sparked.train_weight)
    for ours, theirs in zip(partitions(store, local), partitions(store, sparked), strict=True):
        for a, b in zip(ours[0] + ours[1], theirs[0] + theirs[1], strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ours[2], theirs[2])


def test_arrow_tables_and_parquet_paths_are_read_and_reused_by_content(store, frame, tmp_path):
    kwargs = dict(feature_columns=["x", "s"], label_columns=["y"], num_partitions=2, validation=0.3, seed=2)
    first = prepare_local(frame, store, **kwargs)
    assert first.val_rows > 0 and first.train_rows + first.val_rows == len(frame)
    table = to_arrow(frame)
    assert prepare_local(table, store, **kwargs).fingerprint == first.fingerprint
    pq.write_table(table, tmp_path / "rows.parquet")
    again = prepare_local(str(tmp_path / "rows.parquet"), store, **kwargs)
    assert again == first  # found by its content: nothing written again
    assert prepare_local(frame.iloc[:-1], store, **kwargs).fingerprint != first.fingerprint


@pytest.mark.parametrize(
    ("change", "columns", "message"),
    [
        (
            lambda f: f.assign(s=f["s"].astype(str)),
            ["x", "s"],
            r"Feature column 's' must be numeric.*Received: string",
        ),
        (lambda f: f, ["x", "nope"], r"Columns missing from the data: 'nope'"),
        (lambda f: f.assign(s=f["s"].where(f.index != 5)), ["x", "s"], r"null values: 's' \(1 of 203 rows\)"),
        (
            lambda f: f.assign(x=[np.ones(2 + i % 2, np.float32) for i in range(len(f))]),
            ["x"],
            r"'x'.*different lengths",
        ),
    ],
)
def test_bad_data_is_named_as_by_the_spark_preparation(store, frame, change, columns, message):
    with pytest.raises(DataError, match=message):
        prepare_local(change(frame), store, feature_columns=columns, label_columns=["y"], num_partitions=2)


def test_bad_parameters_and_inputs_are_named(store, frame):
    with pytest.raises(InvalidParamError, match=r"num_partitions must be an int >= 1"):
        prepare_local(frame, store, feature_columns=["x"], label_columns=["y"], num_partitions=0)
    with pytest.raises(
        InvalidParamError, match=r"must be a Spark DataFrame, a pandas DataFrame.*Received: list"
    ):
        prepare_local([1, 2], store, feature_columns=["x"], label_columns=["y"], num_partitions=2)
    with pytest.raises(DataError, match=r"Validation column 's' must be boolean"):
        prepare_local(
            frame, store, feature_columns=["x"], label_columns=["y"], num_partitions=2, validation="s"
        )
    assert isinstance(to_arrow(pa.table({"a": [1]})), pa.Table)
