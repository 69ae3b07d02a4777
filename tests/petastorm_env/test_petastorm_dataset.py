"""Training on a dataset written the way Petastorm users write one: a Unischema with NdarrayCodec and
ScalarCodec fields, rows encoded with ``dict_to_spark_row`` and written inside ``materialize_dataset``."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytestmark = [pytest.mark.spark, pytest.mark.keras]

ROWS = 320


def _rows(seed: int = 11) -> dict[str, np.ndarray]:
    """Learnable rows: ``label`` is the sign of a fixed linear score of ``vec``; ``window`` (10, 3) carries
    the label in its first channel's mean, under noise."""
    rng = np.random.default_rng(seed)
    vec = rng.standard_normal((ROWS, 8)).astype(np.float32)
    label = (vec @ rng.standard_normal(8) > 0.3).astype(np.int32)
    window = rng.standard_normal((ROWS, 10, 3)).astype(np.float32)
    window[:, :, 0] += np.where(label, 1.0, -1.0)[:, None].astype(np.float32)
    return {"vec": vec, "window": window, "label": label}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One Store for the module: a test may reuse the data an earlier one prepared (only faster)."""
    from cerebro_spark.store.base import Store

    return Store.create(str(tmp_path_factory.mktemp("store")))


@pytest.fixture(scope="module")
def petastorm_dataset(spark, tmp_path_factory):
    """(url, rows): a Petastorm dataset of the rows of :func:`_rows`, in 3 Parquet files."""
    from petastorm.codecs import CompressedNdarrayCodec, NdarrayCodec, ScalarCodec
    from petastorm.etl.dataset_metadata import materialize_dataset
    from petastorm.unischema import Unischema, UnischemaField, dict_to_spark_row
    from pyspark.sql.types import IntegerType

    schema = Unischema("Sensors", [
        UnischemaField("vec", np.float32, (8,), NdarrayCodec(), False),
        UnischemaField("window", np.float32, (10, 3), CompressedNdarrayCodec(), False),
        UnischemaField("label", np.int32, (), ScalarCodec(IntegerType()), False),
    ])  # fmt: skip
    rows = _rows()
    url = (tmp_path_factory.mktemp("petastorm") / "sensors").as_uri()
    encoded = [
        dict_to_spark_row(schema, {name: values[i] for name, values in rows.items()}) for i in range(ROWS)
    ]
    with warnings.catch_warnings():  # Petastorm 0.13.1 on pyarrow 14 warns of deprecated pyarrow APIs
        warnings.simplefilter("ignore", FutureWarning)
        with materialize_dataset(spark, url, schema, row_group_size_mb=1):
            rdd = spark.sparkContext.parallelize(encoded, 3)
            spark.createDataFrame(rdd, schema.as_spark_schema()).write.mode("overwrite").parquet(url)
    assert dict(spark.read.parquet(url).dtypes)["vec"] == "binary"  # .npy bytes, not a Parquet list
    return url, rows


def _vec_gen_fn(params):
    import keras

    from cerebro_spark.keras import KerasEstimator

    model = keras.Sequential([
        keras.Input((8,)), keras.layers.Dense(params["width"], activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ])  # fmt: skip
    return KerasEstimator(
        model=model, optimizer=keras.optimizers.Adam(0.03), loss="binary_crossentropy",
        metrics=["accuracy"], batch_size=16,
    )  # fmt: skip


def _trained_rows(store, run_id):
    """Every row of the prepared data a run trained on (training and validation), as numpy arrays."""
    from cerebro_spark.data.prepare import load_prepared
    from cerebro_spark.data.reader import read_partition
    from cerebro_spark.store import layout

    spec = load_prepared(store, store.read_json(layout.run_record_key(run_id))["dataset"]["root"])
    parts = [read_partition(store, spec, "train", i) for i in range(len(spec.train))]
    parts += [read_partition(store, spec, "val", i) for i in range(len(spec.val))]
    features = np.concatenate([p.features[0] for p in parts])
    labels = np.concatenate([p.labels[0] for p in parts])
    return spec, features, labels


def _sorted_rows(features, labels):
    """The rows in a canonical order (by their bytes), to compare as multisets."""
    flat = np.concatenate([features.reshape(len(features), -1), labels[:, None].astype(np.float32)], axis=1)
    return flat[np.lexsort(flat.T[::-1])]


def _majority(labels):
    return max(labels.mean(), 1 - labels.mean())


def _grid_search(store, reader, run_id):
    from cerebro_spark import LocalBackend
    from cerebro_spark.tune import GridSearch, hp_choice

    return GridSearch(
        backend=LocalBackend(2), store=store, estimator_gen_fn=_vec_gen_fn,
        search_space={"width": hp_choice([4, 16])}, num_epochs=2, validation=0.25, seed=5, verbose=0,
        tensorboard=False, feature_columns=["vec"], label_columns=["label"], reader=reader, run_id=run_id,
    )  # fmt: skip


def test_grid_search_trains_on_a_petastorm_dataset_with_either_reader(spark, store, petastorm_dataset):
    url, rows = petastorm_dataset
    result = _grid_search(store, "petastorm", "petastorm-grid").fit_on_prepared_data(url)

    spec, features, labels = _trained_rows(store, "petastorm-grid")
    assert spec.train_rows + spec.val_rows == ROWS and spec.features[0].shape == (8,)
    assert spec.labels[0].dtype == "int64"
    np.testing.assert_array_equal(
        _sorted_rows(features, labels), _sorted_rows(rows["vec"], rows["label"])
    )  # the rows written, each once: decoded exactly
    histories = result.get_all_model_history()
    assert len(histories) == 2 and all(len(h["val_accuracy"]) == 2 for h in histories.values())

    predicted = result.get_best_model().keras().predict(rows["vec"], verbose=0)[:, 0] > 0.5
    accuracy = np.mean(predicted == rows["label"])
    assert accuracy > _majority(rows["label"]) + 0.1, (accuracy, _majority(rows["label"]))

    prepared = sorted(store.listdir("data"))
    by_pyarrow = _grid_search(store, "pyarrow", "pyarrow-grid").fit_on_prepared_data(url)
    assert sorted(store.listdir("data")) == prepared  # converted once, then reused
    assert by_pyarrow.get_all_model_history() == histories  # the same rows in the same order


def test_keras_estimator_trains_on_a_petastorm_field_of_rows_10_by_3(spark, store, petastorm_dataset):
    import keras

    from cerebro_spark import LocalBackend
    from cerebro_spark.keras import KerasEstimator

    url, rows = petastorm_dataset
    model = keras.Sequential([
        keras.Input((10, 3)), keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax"),
    ])  # fmt: skip
    est = KerasEstimator(
        model=model, optimizer=keras.optimizers.Adam(0.03), loss="sparse_categorical_crossentropy",
        metrics=["accuracy"], batch_size=16, num_epochs=2, backend=LocalBackend(2), store=store,
        feature_columns=["window"], label_columns=["label"], seed=2, verbose=0, run_id="window",
    )  # fmt: skip
    fitted = est.fit_on_prepared_data(url.removeprefix("file://"))  # a path works too; default reader

    spec, windows, labels = _trained_rows(store, "window")
    assert spec.train_rows == ROWS and spec.features[0].shape == (10, 3)
    np.testing.assert_array_equal(
        _sorted_rows(windows, labels), _sorted_rows(rows["window"], rows["label"])
    )  # CompressedNdarrayCodec's .npz bytes, decoded exactly
    assert len(fitted.history["accuracy"]) == 2

    test = spark.createDataFrame(
        [(w.tolist(), int(y)) for w, y in zip(rows["window"], rows["label"], strict=True)],
        "window array<array<float>>, label int",
    )
    scored = fitted.transform(test).select("label", "prediction").collect()
    accuracy = np.mean([r["prediction"] == r["label"] for r in scored])
    assert accuracy > _majority(rows["label"]) + 0.1, (accuracy, _majority(rows["label"]))


def test_a_petastorm_field_that_does_not_fit_the_model_fails_before_training(spark, store, petastorm_dataset):
    import keras

    from cerebro_spark import LocalBackend
    from cerebro_spark.errors import DataError
    from cerebro_spark.keras import KerasEstimator

    url, _ = petastorm_dataset
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1, activation="sigmoid")])
    est = KerasEstimator(
        model=model, optimizer="adam", loss="binary_crossentropy", batch_size=16, num_epochs=1,
        backend=LocalBackend(2), store=store, feature_columns=["vec"], label_columns=["label"], verbose=0,
        validation=0.25, seed=5, run_id="misfit",  # the data of the grid search's test, if it ran first
    )  # fmt: skip
    with pytest.raises(
        DataError, match=r"expects input shape \(5,\).* column 'vec' has rows of shape \(8,\)"
    ):
        est.fit_on_prepared_data(url)
    assert not store.exists("runs/misfit")  # no model written, nothing trained


def test_fields_that_cannot_be_decoded_are_named():
    """No JVM: the Unischema fields the take-in refuses, each with a DataError naming it."""
    from petastorm.codecs import NdarrayCodec, ScalarCodec
    from petastorm.unischema import UnischemaField
    from pyspark.sql.types import BinaryType

    from cerebro_spark.data.petastorm_dataset import _field_layout
    from cerebro_spark.errors import DataError

    variable = UnischemaField("v", np.float64, (None,), NdarrayCodec(), False)
    assert _field_layout("v", variable, "u") == (1, False)  # lengths are checked when preparing
    assert _field_layout("m", UnischemaField("m", np.uint8, (2, 2), NdarrayCodec(), False), "u") == (2, True)
    refused = {
        r"'raw' .* binary, stored with ScalarCodec":
            UnischemaField("raw", np.bytes_, (), ScalarCodec(BinaryType()), False),
        r"'cube' .* rows of shape \(4, 4, 3\)": UnischemaField("cube", np.float32, (4, 4, 3), NdarrayCodec(), False),
        r"'s' .* holds <U\d* values": UnischemaField("s", np.str_, (2,), NdarrayCodec(), False),
    }  # fmt: skip
    for message, field in refused.items():
        with pytest.raises(DataError, match=message):
            _field_layout(field.name, field, "u")
    with pytest.raises(DataError, match=r"'gone' .* not a field of its Unischema"):
        _field_layout("gone", None, "u")
