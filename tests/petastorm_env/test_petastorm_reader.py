"""The Petastorm reader (no JVM): the same rows as the pyarrow reader, from files written as preparation writes them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pytest

from cerebro_spark.data._writer import arrow_schema, partition_key, row_group_rows, write_partition
from cerebro_spark.data.reader import PartitionCache, read_partition
from cerebro_spark.data.spec import ColumnSpec, DatasetSpec, PartitionSpec
from cerebro_spark.errors import DataError, InvalidParamError

FEATURES = (ColumnSpec("x", "float32", ()), ColumnSpec("vec", "float32", (3,)))
LABELS = (ColumnSpec("y", "int64", ()),)


def _prepared(store, rows=(37, 0), group_rows=5) -> DatasetSpec:
    """A train file of rows[0] random rows in several row groups and a val file of rows[1] rows."""
    rng = np.random.default_rng(3)
    columns = FEATURES + LABELS
    schema = arrow_schema(columns)
    root = "data/" + "a" * 32
    parts = []
    for split, n in zip(("train", "val"), rows, strict=True):
        batch = pa.record_batch(
            [
                pa.array(rng.normal(size=n).astype(np.float32)),
                pa.array(rng.normal(size=(n, 3)).astype(np.float32).tolist(), schema.field(1).type),
                pa.array(rng.integers(0, 10, n)),
            ],
            schema=schema,
        )
        key = partition_key(root, split, 0)
        assert write_partition(store, key, [batch] if n else [], schema, group_rows) == n
        parts.append(PartitionSpec(key, n))
    return DatasetSpec("a" * 32, root, FEATURES, LABELS, train=(parts[0],), val=(parts[1],))


def test_petastorm_reads_the_same_rows_as_pyarrow(store):
    spec = _prepared(store)
    assert row_group_rows(FEATURES + LABELS) > 5  # the files above have smaller row groups than usual
    by_pyarrow = read_partition(store, spec, "train", 0)
    by_petastorm = read_partition(store, dataclasses.replace(spec, reader="petastorm"), "train", 0)
    assert by_petastorm.rows == by_pyarrow.rows == 37
    for a, b in zip(
        by_pyarrow.features + by_pyarrow.labels, by_petastorm.features + by_petastorm.labels, strict=True
    ):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    # and so the same shuffled order for a unit's seed
    np.testing.assert_array_equal(by_pyarrow.shuffled(9).labels[0], by_petastorm.shuffled(9).labels[0])


def test_petastorm_reads_an_empty_validation_file(store):
    spec = dataclasses.replace(_prepared(store), reader="petastorm")
    data = PartitionCache().get_or_read(store, spec, "val", 0)
    assert data.rows == 0
    assert [a.shape for a in data.features] == [(0,), (0, 3)]


def test_petastorm_reader_checks_the_spec(store):
    spec = dataclasses.replace(_prepared(store), reader="petastorm")
    wrong = dataclasses.replace(spec, features=(ColumnSpec("vec", "float32", (4,)),))
    with pytest.raises(DataError, match=r"Column 'vec' .* shape \(4,\)"):
        read_partition(store, wrong, "train", 0)
    nested = dataclasses.replace(spec, features=(ColumnSpec("img", "float32", (4, 2)),))
    with pytest.raises(InvalidParamError, match=r"column 'img' has rows of shape \(4, 2\)"):
        read_partition(store, nested, "train", 0)
    store.delete(spec.train[0].key)
    with pytest.raises(DataError, match="missing"):
        read_partition(store, spec, "train", 0)
