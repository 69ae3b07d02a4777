"""Column kinds, each trained and transformed: sparse vectors, arrays of arrays, integer and indexed labels,
several inputs and outputs mapped by name or position, sample weights; and the string-label error."""

from __future__ import annotations

import numpy as np
import pytest

from cerebro_spark.errors import DataError

pytestmark = [pytest.mark.spark, pytest.mark.keras]


def _estimator(store, model, loss, features, labels, **kwargs):
    import keras

    from cerebro_spark import LocalBackend
    from cerebro_spark.keras import KerasEstimator

    params = dict(
        model=model, optimizer=keras.optimizers.Adam(1e-2), loss=loss, batch_size=16,
        feature_columns=features, label_columns=labels, store=store, backend=LocalBackend(2),
        num_epochs=2, seed=3, verbose=0, tensorboard=False,
    )  # fmt: skip
    params.update(kwargs)
    return KerasEstimator(**params)


def _by_id(df):
    return df.orderBy("id").toPandas()


def test_sparse_vectors_train_and_transform(spark, store):
    import keras
    from pyspark.ml.linalg import Vectors

    rng = np.random.default_rng(1)
    dense = np.zeros((80, 50), np.float32)
    for i in range(80):
        dense[i, rng.choice(50, 3, replace=False)] = rng.normal(size=3)
    rows = [
        (i, Vectors.sparse(50, {int(j): float(dense[i, j]) for j in np.flatnonzero(dense[i])}), float(i % 2))
        for i in range(80)
    ]
    df = spark.createDataFrame(rows, ["id", "features", "label"])
    model = keras.Sequential([keras.Input((50,)), keras.layers.Dense(1)])
    fitted = _estimator(store, model, "mse", ["features"], ["label"]).fit(df)

    assert len(fitted.history["loss"]) == 2
    scored = _by_id(fitted.transform(df))
    expected = fitted.keras().predict(dense, verbose=0)[:, 0]
    np.testing.assert_allclose(scored["prediction"], expected, rtol=1e-5, atol=1e-5)


def test_arrays_of_arrays_keep_their_shape(spark, store):
    import keras

    from cerebro_spark.data.prepare import load_prepared

    rng = np.random.default_rng(2)
    windows = rng.normal(size=(40, 100, 3)).astype(np.float32)
    df = spark.createDataFrame(
        [(i, windows[i].tolist(), float(windows[i, :, 0].mean() > 0)) for i in range(40)],
        ["id", "window", "y"],
    )
    model = keras.Sequential(
        [
            keras.Input((100, 3)),
            keras.layers.Conv1D(2, 5),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(1),
        ]
    )
    fitted = _estimator(store, model, "mse", ["window"], ["y"]).fit(df)

    (prepared,) = [load_prepared(store, f"data/{d}") for d in store.listdir("data")]
    assert prepared.features[0].shape == (100, 3)
    assert tuple(fitted.keras().inputs[0].shape[1:]) == (100, 3)
    scored = _by_id(fitted.transform(df))
    expected = fitted.keras().predict(windows, verbose=0)[:, 0]
    np.testing.assert_allclose(scored["prediction"], expected, rtol=1e-4, atol=1e-5)


def test_integer_and_string_indexed_labels_train_a_classifier(spark, store):
    import keras
    from pyspark.ml.feature import StringIndexer
    from pyspark.sql import functions as F

    from cerebro_spark.data.prepare import load_prepared

    rng = np.random.default_rng(3)
    x = rng.normal(size=(90, 4))
    names = ["cat", "dog", "eel"]
    df = spark.createDataFrame(
        [(i, x[i].tolist(), int(x[i].argmax() % 3), names[int(x[i].argmax() % 3)]) for i in range(90)],
        ["id", "x", "label_int", "animal"],
    )
    indexed = StringIndexer(inputCol="animal", outputCol="label_idx").fit(df).transform(df)
    assert dict(indexed.dtypes)["label_idx"] == "double"

    for label in ("label_int", "label_idx"):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
        fitted = _estimator(
            store, model, "sparse_categorical_crossentropy", ["x"], [label], metrics=["accuracy"]
        ).fit(indexed)
        scored = fitted.transform(indexed)
        assert {"prediction", "probability"} <= set(scored.columns)
        row = scored.agg(F.min("prediction"), F.max("prediction")).first()
        assert 0.0 <= row[0] <= row[1] <= 2.0
    dtypes = {
        s.labels[0].name: s.labels[0].dtype for s in (load_prepared(store, d) for d in store.listdir("data"))
    }
    assert dtypes == {"label_int": "int64", "label_idx": "float32"}


def test_string_label_error_names_the_column_and_suggests_string_indexer(spark, store, count_jobs):
    import keras

    df = spark.createDataFrame([([1.0, 2.0], "yes"), ([0.0, 1.0], "no")], ["x", "answer"])
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    est = _estimator(store, model, "sparse_categorical_crossentropy", ["x"], ["answer"])

    def fit_fails():
        with pytest.raises(
            DataError,
            match=r"Label column 'answer' must be numeric.*Received: string\. Index it .*StringIndexer",
        ):
            est.fit(df)

    assert count_jobs(fit_fails) == 0  # raised before any Spark job


def _two_in_two_out(input_names, output_names):
    import keras

    a = keras.Input((3,), name=input_names[0])
    b = keras.Input((2,), name=input_names[1])
    hidden = keras.layers.Dense(4, activation="relu")(keras.layers.Concatenate()([a, b]))
    reg = keras.layers.Dense(1, name=output_names[0])(hidden)
    cls = keras.layers.Dense(2, activation="softmax", name=output_names[1])(hidden)
    return keras.Model([a, b], [reg, cls])


@pytest.fixture(scope="module")
def two_inputs(spark):
    rng = np.random.default_rng(4)
    wide, narrow = rng.normal(size=(60, 3)), rng.normal(size=(60, 2))
    rows = [
        (i, wide[i].tolist(), narrow[i].tolist(), float(wide[i].sum()), int(narrow[i, 0] > 0))
        for i in range(60)
    ]
    df = spark.createDataFrame(rows, ["id", "wide", "narrow", "total", "sign"])
    return df, wide.astype(np.float32), narrow.astype(np.float32)


def test_inputs_and_outputs_mapped_by_name(store, two_inputs):
    df, wide, narrow = two_inputs
    model = _two_in_two_out(["wide", "narrow"], ["total", "sign"])
    losses = {"total": "mse", "sign": "sparse_categorical_crossentropy"}
    # the columns are listed in another order than the model's inputs and outputs: names decide
    est = _estimator(store, model, losses, ["narrow", "wide"], ["sign", "total"], validation=0.25)
    fitted = est.fit(df)

    assert {"total_loss", "sign_loss", "val_total_loss", "val_sign_loss"} <= set(fitted.history)
    scored = _by_id(fitted.transform(df))
    reg, cls = fitted.keras().predict([wide, narrow], verbose=0)
    np.testing.assert_allclose(scored["prediction_0"], reg[:, 0], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(scored["prediction_1"], cls.argmax(axis=1).astype(float))


def test_inputs_and_outputs_mapped_by_position_and_crossed_names_rejected(store, two_inputs):
    df, wide, narrow = two_inputs
    model = _two_in_two_out(["in_a", "in_b"], ["out_a", "out_b"])
    fitted = _estimator(
        store, model, ["mse", "sparse_categorical_crossentropy"], ["wide", "narrow"], ["total", "sign"]
    ).fit(df)
    scored = _by_id(fitted.transform(df))
    reg, _ = fitted.keras().predict([wide, narrow], verbose=0)
    np.testing.assert_allclose(scored["prediction_0"], reg[:, 0], rtol=1e-5, atol=1e-5)

    crossed = _two_in_two_out(["narrow", "other"], ["out_a", "out_b"])
    est = _estimator(
        store, crossed, ["mse", "sparse_categorical_crossentropy"], ["wide", "narrow"], ["total", "sign"]
    )
    with pytest.raises(
        DataError, match=r"column 'narrow' is at position 1 but the input of that name is at position 0"
    ):
        est.fit(df)


def test_sample_weights_reach_fit_and_evaluate_and_metrics_combine_exactly(spark, store):
    """Keras' loss is the per-row mean of weighted losses, its compiled metrics are unweighted: the mean
    over partitions weighted by their rows gives exactly what Keras gives on the whole split."""
    import keras
    from pyspark.sql import functions as F

    rng = np.random.default_rng(5)
    n = 120
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5]) + rng.normal(scale=0.5, size=n)).astype(np.float32)
    w = np.exp(2 * rng.normal(size=n)).astype(np.float32)  # heavy-tailed: partitions' mean weights differ
    is_val = np.arange(n) % 3 == 0
    df = spark.createDataFrame(
        [(i, x[i].tolist(), float(y[i]), float(w[i]), bool(is_val[i])) for i in range(n)],
        ["id", "x", "y", "w", "is_val"],
    )
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    fitted = _estimator(
        store, model, "mse", ["x"], ["y"], metrics=["mae"], validation="is_val", sample_weight_column="w"
    ).fit(df)

    result = fitted.keras().evaluate(
        x[is_val], y[is_val], sample_weight=w[is_val], batch_size=1024, verbose=0, return_dict=True
    )
    np.testing.assert_allclose(fitted.history["val_loss"][-1], result["loss"], rtol=1e-4)
    np.testing.assert_allclose(fitted.history["val_mae"][-1], result["mae"], rtol=1e-4)
    unweighted = fitted.keras().evaluate(x[is_val], y[is_val], batch_size=1024, verbose=0, return_dict=True)
    assert abs(unweighted["loss"] - result["loss"]) > 1e-2 * result["loss"]  # the weights did count

    with pytest.raises(DataError, match="Sample weight column 'w' holds negative weights"):
        _estimator(store, model, "mse", ["x"], ["y"], sample_weight_column="w").fit(
            df.withColumn("w", F.lit(-1.0))
        )
