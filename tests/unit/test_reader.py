"""The worker-side reader (no JVM): Parquet files written with pyarrow into a Store -> numpy arrays."""

from __future__ import annotations

import uuid

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cerebro_spark.data._writer import arrow_schema, partition_key, row_group_rows, write_partition
from cerebro_spark.data.reader import PartitionCache, PartitionData, read_partition, unit_seed
from cerebro_spark.data.spec import ColumnSpec, DatasetSpec, PartitionSpec
from cerebro_spark.errors import DataError, InvalidParamError
from cerebro_spark.store.base import Store

pytestmark = pytest.mark.petastorm

ROWS = 10
FEATURES = (
    ColumnSpec("x", "float32", ()),
    ColumnSpec("arr", "float32", (3,)),
    ColumnSpec("img", "float32", (4, 2)),
)
LABELS = (ColumnSpec("y", "int64", ()), ColumnSpec("target", "float32", (2,)))


def _columns(rows: int = ROWS) -> dict[str, pa.Array]:
    """Row i holds i in every element, so rows can be recognised after a shuffle."""
    i = np.arange(rows)
    return {
        "x": pa.array(i.astype(np.float64)),  # stored wider than the spec: the reader casts
        "arr": pa.array([[float(r)] * 3 for r in i], pa.list_(pa.float32())),
        "img": pa.array([[[float(r)] * 2] * 4 for r in i], pa.list_(pa.list_(pa.float32()))),
        "y": pa.array(i, pa.int64()),
        "target": pa.array([[float(r), float(r)] for r in i], pa.list_(pa.float32(), 2)),  # fixed size
    }


def _write_file(store: Store, key: str, table: pa.Table, **kwargs) -> None:
    with store.atomic_writer(key) as f:
        pq.write_table(table, f, **kwargs)


def _spec(key: str, rows: int = ROWS, features=FEATURES, labels=LABELS) -> DatasetSpec:
    return DatasetSpec(
        fingerprint="f" * 32,
        root="data/" + "f" * 32,
        features=features,
        labels=labels,
        train=(PartitionSpec(key, rows),),
        val=(PartitionSpec(key, rows),),
    )


@pytest.fixture
def written(store):
    key = "data/t/train/part-00000.parquet"
    _write_file(store, key, pa.table(_columns()), row_group_size=3)  # several row groups -> chunks
    return store, _spec(key)


def test_read_partition_gives_shapes_and_dtypes_of_the_spec(written):
    store, spec = written
    data = read_partition(store, spec, "train", 0)
    assert data.rows == ROWS
    assert [a.shape for a in data.features] == [(ROWS,), (ROWS, 3), (ROWS, 4, 2)]
    assert [a.shape for a in data.labels] == [(ROWS,), (ROWS, 2)]
    assert [a.dtype for a in data.features] == [np.float32] * 3
    assert [a.dtype for a in data.labels] == [np.int64, np.float32]
    np.testing.assert_array_equal(data.features[2][7], np.full((4, 2), 7.0, np.float32))
    np.testing.assert_array_equal(data.labels[0], np.arange(ROWS))
    assert isinstance(data.x(), list) and len(data.x()) == 3
    assert isinstance(data.y(), list) and len(data.y()) == 2
    assert data.nbytes == sum(a.nbytes for a in data.features + data.labels)


def test_x_and_y_are_single_arrays_for_one_column(written):
    store, spec = written
    one = _spec(spec.train[0].key, features=FEATURES[1:2], labels=LABELS[:1])
    data = read_partition(store, one, "val", 0)
    assert isinstance(data.x(), np.ndarray) and data.x().shape == (ROWS, 3)
    assert isinstance(data.y(), np.ndarray) and data.y().shape == (ROWS,)


def test_read_through_a_store_without_local_paths():
    store = Store.create(f"memory://cerebro-tests/{uuid.uuid4().hex}")
    assert store.local_path("k") is None
    key = "data/t/train/part-00000.parquet"
    _write_file(store, key, pa.table(_columns()))
    data = read_partition(store, _spec(key), "train", 0)
    np.testing.assert_array_equal(data.features[1][:, 0], np.arange(ROWS, dtype=np.float32))


def test_sliced_and_offset_list_arrays_are_flattened_correctly(store):
    # A table sliced from a bigger one: its list arrays have non-zero offsets.
    table = pa.table(_columns(20)).slice(5, ROWS)
    key = "data/t/train/part-00000.parquet"
    _write_file(store, key, table)
    data = read_partition(store, _spec(key), "train", 0)
    np.testing.assert_array_equal(data.features[2][:, 3, 1], np.arange(5, 15, dtype=np.float32))


def test_shuffled_is_a_reproducible_permutation_applied_alike(written):
    store, spec = written
    data = read_partition(store, spec, "train", 0)
    a, b, c = data.shuffled(1), data.shuffled(1), data.shuffled(2)
    order = a.labels[0]
    assert sorted(order.tolist()) == list(range(ROWS))
    assert order.tolist() != list(range(ROWS))
    np.testing.assert_array_equal(order, b.labels[0])
    assert c.labels[0].tolist() != order.tolist()
    # every array follows the same permutation (row i holds i everywhere)
    np.testing.assert_array_equal(a.features[0], order.astype(np.float32))
    np.testing.assert_array_equal(a.features[2][:, 1, 0], order.astype(np.float32))
    np.testing.assert_array_equal(a.labels[1][:, 1], order.astype(np.float32))
    np.testing.assert_array_equal(order, np.random.default_rng(1).permutation(ROWS))
    np.testing.assert_array_equal(data.labels[0], np.arange(ROWS))  # the original is unchanged


def test_unit_seed_is_stable_and_depends_on_every_argument():
    seed = unit_seed(7, "m0", 2, 1)
    assert seed == unit_seed(7, "m0", 2, 1)
    assert 0 <= seed < 2**63
    others = {
        unit_seed(8, "m0", 2, 1),
        unit_seed(7, "m1", 2, 1),
        unit_seed(7, "m0", 3, 1),
        unit_seed(7, "m0", 2, 0),
    }
    assert seed not in others and len(others) == 4


def test_unit_seed_does_not_change_between_versions_or_processes():
    # Pinned: a change would change every run's data order, so it must be deliberate.
    assert unit_seed(7, "m0", 2, 1) == 7909103810015953687


def test_writer_and_reader_agree_including_empty_partitions(store):
    columns = FEATURES + LABELS
    schema = arrow_schema(columns)
    key = partition_key("data/t", "train", 0)
    batch = pa.RecordBatch.from_pydict(_columns(), schema=schema.remove_metadata())
    assert write_partition(store, key, [batch.slice(0, 4), batch.slice(4)], schema, group_rows=3) == ROWS
    assert pq.ParquetFile(store.local_path(key)).metadata.num_row_groups >= 2
    data = read_partition(store, _spec(key), "train", 0)
    np.testing.assert_array_equal(data.labels[1][:, 0], np.arange(ROWS, dtype=np.float32))

    empty = partition_key("data/t", "val", 0)
    assert write_partition(store, empty, [], schema, group_rows=row_group_rows(columns)) == 0
    data = read_partition(store, _spec(empty, rows=0), "val", 0)
    assert data.rows == 0 and data.features[2].shape == (0, 4, 2) and data.labels[0].dtype == np.int64


def test_row_groups_hold_about_32_mib():
    assert row_group_rows([ColumnSpec("x", "float32", (1024,))]) == 4096
    assert row_group_rows([ColumnSpec("x", "float32", (10**9,))]) == 1


def test_a_file_with_other_row_count_is_a_data_error(written):
    store, spec = written
    wrong = _spec(spec.train[0].key, rows=ROWS + 1)
    with pytest.raises(DataError, match=r"has 10 rows; its metadata says 11"):
        read_partition(store, wrong, "train", 0)


def test_a_missing_column_is_a_data_error(written):
    store, spec = written
    extra = _spec(spec.train[0].key, features=(*FEATURES, ColumnSpec("nope", "float32", ())))
    with pytest.raises(DataError, match=r"cannot be read as columns .*'nope'"):
        read_partition(store, extra, "train", 0)


def test_a_column_of_other_length_or_depth_is_a_data_error(written):
    store, spec = written
    key = spec.train[0].key
    longer = _spec(key, features=(ColumnSpec("arr", "float32", (4,)),))
    with pytest.raises(
        DataError, match=r"Column 'arr' .*expected lists of 4 elements at depth 0, found 3 to 3"
    ):
        read_partition(store, longer, "train", 0)
    deeper = _spec(key, features=(ColumnSpec("arr", "float32", (3, 1)),))
    with pytest.raises(DataError, match=r"Column 'arr' .*expected a list type at depth 1, found float"):
        read_partition(store, deeper, "train", 0)
    flat = _spec(key, features=(ColumnSpec("arr", "float32", ()),))
    with pytest.raises(DataError, match=r"Column 'arr' .*expected numbers, found list"):
        read_partition(store, flat, "train", 0)


def test_ragged_lists_and_nulls_are_data_errors(store):
    key = "data/t/train/part-00000.parquet"
    _write_file(store, key, pa.table({"a": pa.array([[1.0, 2.0], [3.0]]), "b": pa.array([1.0, None])}))
    ragged = _spec(key, rows=2, features=(ColumnSpec("a", "float32", (2,)),), labels=())
    with pytest.raises(DataError, match=r"lists of 2 elements at depth 0, found 1 to 2"):
        read_partition(store, ragged, "train", 0)
    nulls = _spec(key, rows=2, features=(ColumnSpec("b", "float32", ()),), labels=())
    with pytest.raises(DataError, match=r"Column 'b' .*expected no nulls, found 1"):
        read_partition(store, nulls, "train", 0)


def test_a_missing_file_is_a_data_error(store):
    spec = _spec("data/t/train/part-00009.parquet")
    with pytest.raises(DataError, match=r"part-00009.parquet' is missing from Store"):
        read_partition(store, spec, "train", 0)


def test_bad_split_or_index_is_an_invalid_param_error(written):
    store, spec = written
    with pytest.raises(InvalidParamError, match=r"split must be 'train' or 'val'. Received: split='test'"):
        read_partition(store, spec, "test", 0)
    with pytest.raises(InvalidParamError, match=r"index must be an int in \[0, 1\) .*Received: index=1"):
        read_partition(store, spec, "train", 1)


def test_partition_cache_reads_each_partition_once(written, monkeypatch):
    store, spec = written
    import cerebro_spark.data.reader as reader

    reads = []
    real = reader.read_partition
    monkeypatch.setattr(reader, "read_partition", lambda *a: reads.append(a[2:]) or real(*a))
    cache = PartitionCache()
    first = cache.get_or_read(store, spec, "train", 0)
    assert cache.get_or_read(store, spec, "train", 0) is first
    cache.get_or_read(store, spec, "val", 0)
    assert reads == [("train", 0), ("val", 0)]
    assert len(cache) == 2 and (spec.fingerprint, "train", 0) in cache
    assert cache.get((spec.fingerprint, "train", 0)) is first
    assert cache.nbytes == 2 * first.nbytes
    cache.evict("other")
    assert len(cache) == 2
    cache.evict(spec.fingerprint)
    assert len(cache) == 0 and cache.get((spec.fingerprint, "train", 0)) is None


def test_partition_data_is_frozen():
    data = PartitionData(features=(np.zeros(2),), labels=(np.zeros(2),), rows=2)
    with pytest.raises(AttributeError):
        data.rows = 3  # type: ignore[misc]
