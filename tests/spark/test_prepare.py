"""Data preparation on a real local Spark: types, shapes, splits, balance, round trips, reuse and errors."""

from __future__ import annotations

import os
from decimal import Decimal

import numpy as np
import pytest

from cerebro_spark.data import _routing as routing
from cerebro_spark.data._columns import resolve_columns
from cerebro_spark.data._fingerprint import dataset_fingerprint
from cerebro_spark.data.prepare import load_prepared, prepare_data
from cerebro_spark.data.reader import read_partition
from cerebro_spark.errors import DataError, InvalidParamError

pytestmark = pytest.mark.spark

N = 301  # rows; odd, so that splits do not divide evenly


def _row(i: int) -> tuple:
    from pyspark.ml.linalg import Vectors

    return (
        i,
        i / 10,
        [float(i), i + 0.5, -float(i)],
        [[i, i + 1, i + 2], [2 * i, 0, 1]],
        Vectors.dense([float(i), 1.0, 2.0, 3.0]),
        Vectors.sparse(5, {i % 5: float(i)}),
        i % 4 == 0,
        i / 3,
        i % 3,
        i % 2 == 0,
        f"r{i}",
        Decimal(i) / 4,
    )


def _schema():
    from pyspark.ml.linalg import VectorUDT
    from pyspark.sql import types as T

    return T.StructType(
        [
            T.StructField("id", T.LongType()),
            T.StructField("x", T.DoubleType()),
            T.StructField("arr", T.ArrayType(T.DoubleType())),
            T.StructField("nested", T.ArrayType(T.ArrayType(T.IntegerType()))),
            T.StructField("vec", VectorUDT()),
            T.StructField("svec", VectorUDT()),
            T.StructField("flag", T.BooleanType()),
            T.StructField("y_float", T.DoubleType()),
            T.StructField("y_int", T.IntegerType()),
            T.StructField("y_bool", T.BooleanType()),
            T.StructField("name", T.StringType()),
            T.StructField("dec", T.DecimalType(10, 2)),
        ]
    )


@pytest.fixture(scope="module")
def frame(spark):
    """N rows in 7 input partitions of uneven sizes."""
    rows = [_row(i) for i in range(N)]
    chunks = [rows[:10], rows[10:100], rows[100:101], rows[101:180], [], rows[180:250], rows[250:]]
    rdd = spark.sparkContext.parallelize(chunks, len(chunks)).flatMap(lambda chunk: chunk)
    return spark.createDataFrame(rdd, _schema())


def _read_all(store, spec, split: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """All rows of a split, concatenated over its partitions and sorted by the label 'id'."""
    parts = [read_partition(store, spec, split, i) for i in range(len(getattr(spec, split)))]
    features = [np.concatenate([p.features[j] for p in parts]) for j in range(len(spec.features))]
    labels = [np.concatenate([p.labels[j] for p in parts]) for j in range(len(spec.labels))]
    order = np.argsort(labels[[c.name for c in spec.labels].index("id")])
    return [f[order] for f in features], [y[order] for y in labels]


def _prepare(frame, store, features=("x",), labels=("id",), num_partitions=3, **kwargs):
    return prepare_data(
        frame,
        store,
        feature_columns=list(features),
        label_columns=list(labels),
        num_partitions=num_partitions,
        **kwargs,
    )


def _ids(store, spec, split: str) -> list[int]:
    return sorted(_read_all(store, spec, split)[1][0].tolist())


def _summarize_on(where: str, monkeypatch) -> None:
    """Make preparation summarize collected rows on the driver ("driver": as for data Spark sizes
    small, such as a Parquet file) or run the aggregate job ("spark"), whatever Spark's size estimate."""
    from cerebro_spark.data import prepare

    monkeypatch.setattr(prepare, "is_small", lambda df, max_bytes: where == "driver" and max_bytes > 0)


@pytest.fixture(params=["collected first", "driver", "executors"])
def write_path(request, monkeypatch):
    """Run a test with small data collected first and summarized by the driver, then summarized by the
    aggregate job and written by the driver, then written by the executors."""
    _summarize_on("driver" if request.param == "collected first" else "spark", monkeypatch)
    if request.param == "executors":
        monkeypatch.setenv("CEREBRO_COLLECT_MAX_BYTES", "0")
    return request.param


@pytest.fixture(params=["spark", "driver"])
def summary_on(request, monkeypatch):
    """Run a test with the aggregate job, then with the rows collected and summarized on the driver."""
    _summarize_on(request.param, monkeypatch)
    return request.param


# ---- what is written ----------------------------------------------------------------------------------


def test_scalar_feature_and_label_round_trip(frame, store, write_path):
    spec = _prepare(frame, store)
    assert [(c.name, c.dtype, c.shape) for c in spec.features] == [("x", "float32", ())]
    assert [(c.name, c.dtype, c.shape) for c in spec.labels] == [("id", "int64", ())]
    assert spec.num_partitions == 3 and spec.train_rows == N and spec.val == ()
    assert store.listdir(f"{spec.root}/train") == [f"part-0000{i}.parquet" for i in range(3)]
    assert store.listdir(spec.root) == ["_metadata.json", "train"]
    (x,), (ids,) = _read_all(store, spec, "train")
    np.testing.assert_array_equal(ids, np.arange(N))
    np.testing.assert_array_equal(x, (np.arange(N) / 10).astype(np.float32))


@pytest.mark.petastorm
def test_arrays_nested_arrays_vectors_and_several_labels_round_trip(frame, store, write_path):
    features = ("x", "arr", "nested", "vec", "svec", "dec")
    labels = ("y_float", "y_int", "id", "y_bool")
    spec = _prepare(frame, store, features, labels, num_partitions=2)
    shapes = {c.name: (c.dtype, c.shape) for c in spec.features + spec.labels}
    assert shapes == {
        "x": ("float32", ()),
        "arr": ("float32", (3,)),
        "nested": ("float32", (2, 3)),
        "vec": ("float32", (4,)),
        "svec": ("float32", (5,)),
        "dec": ("float32", ()),
        "y_float": ("float32", ()),
        "y_int": ("int64", ()),
        "id": ("int64", ()),
        "y_bool": ("int64", ()),
    }
    (x, arr, nested, vec, svec, dec), (y_float, y_int, ids, y_bool) = _read_all(store, spec, "train")
    i = np.arange(N)
    np.testing.assert_array_equal(ids, i)
    np.testing.assert_array_equal(arr, np.stack([i, i + 0.5, -i], axis=1).astype(np.float32))
    np.testing.assert_array_equal(nested[:, 0], np.stack([i, i + 1, i + 2], axis=1).astype(np.float32))
    np.testing.assert_array_equal(
        nested[:, 1], np.stack([2 * i, 0 * i, 0 * i + 1], axis=1).astype(np.float32)
    )
    np.testing.assert_array_equal(vec[:, 0], i.astype(np.float32))
    np.testing.assert_array_equal(vec[:, 1:], np.tile(np.float32([1, 2, 3]), (N, 1)))
    dense = np.zeros((N, 5), np.float32)
    dense[i, i % 5] = i
    np.testing.assert_array_equal(svec, dense)
    np.testing.assert_array_equal(dec, (i / 4).astype(np.float32))
    np.testing.assert_array_equal(y_float, (i / 3).astype(np.float32))
    np.testing.assert_array_equal(y_int, i % 3)
    np.testing.assert_array_equal(y_bool, (i % 2 == 0).astype(np.int64))
    data = read_partition(store, spec, "train", 0)
    assert isinstance(data.x(), list) and len(data.x()) == 6 and len(data.y()) == 4


@pytest.mark.petastorm
def test_vector_assembler_output_dense_and_sparse_rows(spark, store):
    from pyspark.ml.feature import VectorAssembler

    rows = [(i, float(i % 2), 0.0, float(i)) for i in range(40)]  # many zeros: some rows come out sparse
    df = spark.createDataFrame(rows, "id long, a double, b double, c double")
    assembled = VectorAssembler(inputCols=["a", "b", "c"], outputCol="features").transform(df)
    spec = _prepare(assembled, store, ("features",), ("id",), num_partitions=2)
    assert spec.features[0].shape == (3,)
    (features,), (ids,) = _read_all(store, spec, "train")
    expected = np.array([[r[1], r[2], r[3]] for r in rows], np.float32)
    np.testing.assert_array_equal(features, expected[ids])


def test_column_names_are_taken_literally(spark, store):
    df = spark.createDataFrame([(i, float(i)) for i in range(6)], "`a.b` long, `x y` double")
    spec = _prepare(df, store, ("x y",), ("a.b",), num_partitions=2)
    assert [c.name for c in spec.features + spec.labels] == ["x y", "a.b"]
    assert spec.train_rows == 6


@pytest.mark.parametrize("num_partitions", [1, 3, 7])
def test_partitions_differ_by_at_most_one_row(frame, store, num_partitions, write_path):
    spec = _prepare(frame, store, num_partitions=num_partitions, validation=0.3, seed=5)
    for parts, total in ((spec.train, spec.train_rows), (spec.val, spec.val_rows)):
        sizes = [p.rows for p in parts]
        assert len(sizes) == num_partitions and sum(sizes) == total
        assert max(sizes) - min(sizes) <= 1, sizes
        for i, part in enumerate(parts):  # the metadata's counts are the files' counts
            assert read_partition(store, spec, "train" if parts is spec.train else "val", i).rows == part.rows
    assert spec.train_rows + spec.val_rows == N


@pytest.mark.parametrize("validation", [None, 0.3, "flag"])
def test_the_three_paths_write_the_same_files(frame, tmp_path, monkeypatch, count_jobs, validation):
    # Small data is collected and written by the driver (one Spark job after the aggregate, no Python
    # workers); the executors' write job must give the same rows, in the same order, in each file.
    import pyarrow as pa
    import pyarrow.parquet as pq

    from cerebro_spark.store.base import Store

    # Smaller data still is collected before the summary: one Spark job in all.
    stores = {path: Store.create(str(tmp_path / path)) for path in ("first", "driver", "executors")}
    kwargs = dict(features=("x", "arr", "nested", "svec", "vec"), labels=("id", "y_bool", "y_float"),
                  num_partitions=3, validation=validation, seed=3)  # fmt: skip
    _summarize_on("driver", monkeypatch)
    first_jobs = count_jobs(lambda: _prepare(frame, stores["first"], **kwargs))
    _summarize_on("spark", monkeypatch)
    driver_jobs = count_jobs(lambda: _prepare(frame, stores["driver"], **kwargs))
    monkeypatch.setenv("CEREBRO_COLLECT_MAX_BYTES", "0")
    _prepare(frame, stores["executors"], **kwargs)
    specs = {path: load_prepared(store, store.listdir("data")[0]) for path, store in stores.items()}
    assert specs["first"] == specs["driver"] == specs["executors"]
    for part in specs["driver"].train + specs["driver"].val:
        tables = [pq.read_table(pa.BufferReader(store.read_bytes(part.key))) for store in stores.values()]
        assert tables[0].equals(tables[1]) and tables[1].equals(tables[2]), part.key
        assert tables[0].schema.equals(tables[1].schema) and tables[1].schema.equals(tables[2].schema)
    assert driver_jobs <= 3  # the aggregate (maybe two stages' jobs) and the collect
    assert first_jobs == 1  # the collect


def test_collect_max_bytes_must_be_a_number(frame, store, monkeypatch, count_jobs):
    monkeypatch.setenv("CEREBRO_COLLECT_MAX_BYTES", "lots")

    def fails():
        with pytest.raises(InvalidParamError, match=r"CEREBRO_COLLECT_MAX_BYTES must be .*Received: 'lots'"):
            _prepare(frame, store)

    assert count_jobs(fails) == 0


def test_spark_round_robin_alone_would_not_balance(frame):
    # Why the writer routes rows itself: repartition(n) starts each input partition at a random place.
    from pyspark.sql import functions as F

    counts = frame.repartition(3).groupBy(F.spark_partition_id()).count().collect()
    sizes = sorted(r["count"] for r in counts)
    assert sum(sizes) == N
    assert max(sizes) - min(sizes) > 1, sizes  # true for this input; the writer does better (above)


def test_murmur3_matches_spark_hash(spark):
    from pyspark.sql import functions as F

    values = list(range(-40, 40)) + [2**31 - 1, -(2**31)]
    df = spark.createDataFrame([(v,) for v in values], "v int")
    hashed = [r[0] for r in df.select(F.hash("v")).collect()]
    assert hashed == [routing.murmur3_int(v) for v in values]


# ---- the validation split -----------------------------------------------------------------------------


def test_validation_fraction_is_seeded(frame, store, tmp_path):
    from cerebro_spark.store.base import Store

    other = Store.create(str(tmp_path / "other"))
    a = _prepare(frame, store, validation=0.25, seed=11)
    b = _prepare(frame, other, validation=0.25, seed=11)
    c = _prepare(frame, store, validation=0.25, seed=12)
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert (a.train_rows, a.val_rows) == (b.train_rows, b.val_rows)
    assert _ids(store, a, "val") == _ids(other, b, "val")
    assert _ids(store, a, "val") != _ids(store, c, "val")
    assert 0.15 * N < a.val_rows < 0.35 * N
    assert sorted(_ids(store, a, "val") + _ids(store, a, "train")) == list(range(N))
    assert a.params["seed"] == 11 and a.params["split_seed"] == 11


def test_validation_by_boolean_column(frame, store, write_path):
    spec = _prepare(frame, store, validation="flag", num_partitions=2)
    assert _ids(store, spec, "val") == [i for i in range(N) if i % 4 == 0]
    assert _ids(store, spec, "train") == [i for i in range(N) if i % 4 != 0]
    assert max(p.rows for p in spec.train) - min(p.rows for p in spec.train) <= 1


def test_fewer_validation_rows_than_partitions_writes_empty_files(spark, store, write_path):
    df = spark.createDataFrame([(i, float(i), i == 3) for i in range(12)], "id long, x double, v boolean")
    spec = _prepare(df, store, validation="v", num_partitions=3)
    assert [p.rows for p in spec.val] == [1, 0, 0]
    assert len(store.listdir(f"{spec.root}/val")) == 3
    empty = read_partition(store, spec, "val", 2)
    assert empty.rows == 0 and empty.features[0].shape == (0,) and empty.labels[0].dtype == np.int64


def test_no_seed_draws_one_and_records_it(frame, store):
    spec = _prepare(frame, store, validation=0.2)
    assert spec.params["seed"] is None and isinstance(spec.params["split_seed"], int)


# ---- reuse and fingerprints ---------------------------------------------------------------------------


def _mtimes(store, spec) -> dict[str, int]:
    keys = [p.key for p in spec.train + spec.val] + [spec.metadata_key]
    return {k: os.stat(store.local_path(k)).st_mtime_ns for k in keys}


@pytest.mark.petastorm
def test_reuse_returns_the_same_spec_without_any_job_or_write(spark, frame, store, count_jobs):
    first = _prepare(frame, store, validation=0.2, seed=3)
    for key in _mtimes(store, first):  # back-date the files: any rewrite gives them a new time
        os.utime(store.local_path(key), ns=(1_000_000_000, 1_000_000_000))
    before = _mtimes(store, first)
    found = {}
    assert count_jobs(lambda: found.update(spec=_prepare(frame, store, validation=0.2, seed=3))) == 0
    assert found["spec"] == first
    assert _mtimes(store, first) == before
    # the counter does see jobs: preparing again with reuse=False runs some and rewrites the files
    assert count_jobs(lambda: _prepare(frame, store, validation=0.2, seed=3, reuse=False)) > 0
    assert all(before[k] != t for k, t in _mtimes(store, first).items())


def test_load_prepared_by_fingerprint_or_root(frame, store):
    spec = _prepare(frame, store)
    assert load_prepared(store, spec.fingerprint) == spec
    assert load_prepared(store, spec.root) == spec
    with pytest.raises(
        DataError, match=rf"No prepared data at 'data/{'0' * 32}'.*in this Store: '{spec.root}'"
    ):
        load_prepared(store, "0" * 32)


def test_an_incomplete_preparation_is_replaced(frame, store):
    spec = _prepare(frame, store, num_partitions=2)
    store.delete(spec.metadata_key)  # as if the previous run had died before the end
    store.write_bytes(f"{spec.root}/train/part-00007.parquet", b"junk")
    again = _prepare(frame, store, num_partitions=2)
    assert again == spec
    assert store.listdir(f"{spec.root}/train") == ["part-00000.parquet", "part-00001.parquet"]


def test_any_parameter_changes_the_fingerprint(frame):
    def fp(features=("x",), labels=("id",), n=3, validation=None, seed=None, df=frame):
        return dataset_fingerprint(
            df, resolve_columns(df.schema, list(features), list(labels)), n, validation, seed
        )

    prints = [
        fp(),
        fp(n=2),
        fp(validation=0.2),
        fp(validation=0.2, seed=1),
        fp(validation="flag"),
        fp(features=("arr",)),
        fp(features=("x", "arr")),
        fp(labels=("y_int",)),
        fp(df=frame.filter("id > 3")),
    ]
    assert len(set(prints)) == len(prints)
    assert fp() == fp() and len(fp()) == 32


def test_file_sources_fingerprint_by_files_and_plan(spark, frame, tmp_path):
    path = str(tmp_path / "parquet")
    frame.select("id", "x").write.parquet(path)

    def fp(df):
        return dataset_fingerprint(df, resolve_columns(df.schema, ["x"], ["id"]), 2, None, None)

    first = fp(spark.read.parquet(path))
    assert fp(spark.read.parquet(path)) == first  # another DataFrame on the same files
    assert fp(spark.read.parquet(path).filter("id > 5")) != first
    spark.createDataFrame([(1000, 1.0)], "id long, x double").write.mode("append").parquet(path)
    assert fp(spark.read.parquet(path)) != first  # a file was added


# ---- errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"feature_columns": ["x", "nope", "gone"]},
            r"Columns missing from the DataFrame: 'nope', 'gone'. Available columns: 'id', 'x', 'arr', .*'dec'\.",
        ),
        ({"label_columns": ["nope"]}, r"Columns missing from the DataFrame: 'nope'\."),
        (
            {"feature_columns": ["name"]},
            r"Feature column 'name' must be numeric, an array of numbers, an array of arrays of numbers or a "
            r"pyspark.ml.linalg vector. Received: string\.",
        ),
        ({"feature_columns": ["flag"]}, r"Feature column 'flag' must be numeric.*Received: boolean\."),
        ({"label_columns": ["name"]}, r"Label column 'name' must be numeric or boolean.*Received: string\."),
        ({"validation": "nope"}, r"Validation column 'nope' \(validation='nope'\) is missing.*Available"),
        ({"validation": "x"}, r"Validation column 'x' must be boolean .*Received: double\."),
    ],
)
def test_schema_errors_run_no_spark_job(spark, frame, store, kwargs, message, count_jobs):
    args = {"feature_columns": ["x"], "label_columns": ["id"], "num_partitions": 2, **kwargs}

    def call():
        with pytest.raises(DataError, match=message):
            prepare_data(frame, store, **args)

    assert count_jobs(call) == 0
    assert store.listdir("data") == []


def test_unsupported_nested_types_are_schema_errors(spark, store):
    df = spark.createDataFrame(
        [(1, [["a"]], [[[1.0]]], {"k": 1.0})],
        "id long, s array<array<string>>, d array<array<array<double>>>, m map<string,double>",
    )
    for name, received in (
        ("s", "array<array<string>>"),
        ("d", "array<array<array<double>>>"),
        ("m", "map<string,double>"),
    ):
        with pytest.raises(DataError, match=rf"Feature column '{name}' must be .*Received: {received}\."):
            _prepare(df, store, (name,), ("id",), num_partitions=1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"validation": 1.5}, r"validation must be None, a fraction in \(0, 1\).*Received: validation=1.5\."),
        ({"validation": -0.1}, r"Received: validation=-0.1\."),
        ({"validation": True}, r"Received: validation=True\."),
        ({"validation": [0.2]}, r"Received: validation=\[0.2\]\."),
        ({"num_partitions": 0}, r"num_partitions must be an int >= 1 .*Received: num_partitions=0\."),
        ({"num_partitions": 2.0}, r"Received: num_partitions=2.0\."),
        (
            {"feature_columns": "x"},
            r"feature_columns must be a non-empty list .*\(use \['x'\] for one column\)",
        ),
        (
            {"feature_columns": []},
            r"feature_columns must be a non-empty list .*Received: feature_columns=\[\]\.",
        ),
        ({"label_columns": [1]}, r"label_columns must be a non-empty list .*Received: label_columns=\[1\]\."),
        ({"feature_columns": ["x", "x"]}, r"must not name a column twice.*\(repeated: 'x'\)"),
        (
            {"label_columns": ["x"]},
            r"both a feature and a label. Received: 'x' in feature_columns and in label",
        ),
        ({"seed": -1}, r"seed must be None or an int in \[0, 2\*\*63\). Received: seed=-1\."),
        ({"reuse": "yes"}, r"reuse must be a bool. Received: reuse='yes'\."),
    ],
)
def test_parameter_errors(frame, store, kwargs, message):
    args = {"feature_columns": ["x"], "label_columns": ["id"], "num_partitions": 2, **kwargs}
    with pytest.raises(InvalidParamError, match=message):
        prepare_data(frame, store, **args)


def test_validation_zero_means_none(frame, store):
    assert _prepare(frame, store, validation=0) == _prepare(frame, store, validation=None)


def _data_error(spark, store, rows, ddl, message, **kwargs):
    df = spark.createDataFrame(rows, ddl)
    args = {"features": ("x",), "labels": ("id",), "num_partitions": 2, **kwargs}
    with pytest.raises(DataError, match=message):
        _prepare(df, store, args.pop("features"), args.pop("labels"), **args)
    assert store.listdir("data") == []  # nothing written


def test_empty_dataframe(spark, store, summary_on):
    _data_error(spark, store, [], "id long, x double", r"The DataFrame is empty: there are no rows")


def test_nulls_name_each_column_and_count(spark, store, summary_on):
    rows = [(1, None, None), (2, 1.0, None), (3, None, 1.0), (4, 2.0, 2.0)]
    _data_error(
        spark, store, rows, "id long, x double, z double",
        r"Columns hold null values: 'x' \(2 of 4 rows\), 'z' \(2 of 4 rows\)\. Expected no nulls",
        features=("x", "z"),
    )  # fmt: skip


def test_null_array_elements(spark, store, summary_on):
    rows = [(1, [1.0, None]), (2, [1.0, 2.0])]
    _data_error(
        spark, store, rows, "id long, x array<double>", r"'x' holds arrays with null elements in 1 rows"
    )


def test_arrays_of_different_lengths(spark, store, summary_on):
    rows = [(1, [1.0, 2.0]), (2, [1.0, 2.0, 3.0, 4.0]), (3, [1.0])]
    _data_error(
        spark, store, rows, "id long, x array<double>",
        r"Feature column 'x' holds arrays of different lengths: from 1 to 4 elements\.",
    )  # fmt: skip


def test_inner_arrays_of_different_lengths(spark, store, summary_on):
    rows = [(1, [[1.0, 2.0], [1.0]]), (2, [[1.0, 2.0], [3.0, 4.0]])]
    _data_error(
        spark, store, rows, "id long, x array<array<double>>",
        r"Feature column 'x' holds inner arrays of different lengths: from 1 to 2 elements\.",
    )  # fmt: skip


def test_vectors_of_different_sizes(spark, store, summary_on):
    from pyspark.ml.linalg import Vectors

    rows = [(1, Vectors.dense([1.0, 2.0])), (2, Vectors.sparse(3, {0: 1.0}))]
    df = spark.createDataFrame(rows, ["id", "x"])
    with pytest.raises(DataError, match=r"'x' holds arrays of different lengths: from 2 to 3 elements"):
        _prepare(df, store, num_partitions=1)


def test_empty_arrays(spark, store, summary_on):
    _data_error(spark, store, [(1, []), (2, [])], "id long, x array<double>", r"'x' holds empty arrays")


def test_fewer_training_rows_than_partitions(spark, store, summary_on):
    rows = [(i, float(i)) for i in range(3)]
    _data_error(
        spark, store, rows, "id long, x double",
        r"Only 3 training rows for num_partitions=4 workers \(the DataFrame has 3 rows\)\. Expected at least",
        num_partitions=4,
    )  # fmt: skip


def test_validation_fraction_leaving_no_validation_rows(spark, store, summary_on):
    rows = [(i, float(i)) for i in range(5)]
    _data_error(
        spark, store, rows, "id long, x double",
        r"validation=1e-09 left no validation rows out of 5 rows \(seed=1\)",
        validation=1e-9, seed=1,
    )  # fmt: skip


def test_validation_column_never_true(spark, store, summary_on):
    rows = [(i, float(i), False) for i in range(5)]
    _data_error(
        spark, store, rows, "id long, x double, v boolean",
        r"Validation column 'v' is True on no row: no validation rows out of 5",
        validation="v",
    )  # fmt: skip


def test_validation_column_with_nulls(spark, store, summary_on):
    rows = [(i, float(i), None if i == 2 else i % 2 == 0) for i in range(5)]
    _data_error(
        spark, store, rows, "id long, x double, v boolean",
        r"Columns hold null values: 'v' \(1 of 5 rows\)", validation="v",
    )  # fmt: skip


def test_numpy_numbers_are_accepted_as_parameters(frame, store):
    first = _prepare(frame, store, num_partitions=np.int64(2), validation=np.float32(0.25), seed=np.int64(11))
    assert first.params["num_partitions"] == 2 and first.params["seed"] == 11
    assert _prepare(frame, store, num_partitions=2, validation=0.25, seed=11) == first  # reused


def test_integral_features_above_float32_precision_are_warned(spark, store, caplog, summary_on):
    frame = spark.createDataFrame(
        [(i, 2**25 + i, [i, 3]) for i in range(12)], "id long, big long, small array<int>"
    )
    with caplog.at_level("WARNING", logger="cerebro_spark.data._summary"):
        _prepare(frame, store, features=("big", "small"), num_partitions=2)
    warned = [r.getMessage() for r in caplog.records if "above 2**24" in r.getMessage()]
    assert len(warned) == 1 and "'big' holds integers up to 3355444" in warned[0]  # as float32; not 'small'
