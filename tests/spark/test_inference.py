"""KerasModel.transform on a real local Spark: output columns and types, batching, laziness, errors."""

from __future__ import annotations

import numpy as np
import pytest

from cerebro_spark.errors import DataError, InvalidParamError

pytestmark = [pytest.mark.spark, pytest.mark.keras, pytest.mark.petastorm]

ROWS = 60


def _compiled(model, loss):
    model.compile(optimizer="adam", loss=loss)
    model.optimizer.build(model.trainable_variables)  # saved with its state: loads without warnings
    return model


@pytest.fixture(scope="module")
def frame(spark):
    from pyspark.ml.linalg import Vectors

    rng = np.random.default_rng(0)
    x = rng.normal(size=(ROWS, 4)).astype(np.float32)
    rows = [(i, Vectors.dense(x[i].tolist()), x[i].tolist(), f"row{i}") for i in range(ROWS)]
    return spark.createDataFrame(rows, ["id", "vec", "arr", "text"]).repartition(3), x


def _sorted(df):
    return df.orderBy("id").toPandas()


def test_classifier_writes_prediction_probability_and_raw_output(frame):
    import keras

    from cerebro_spark.keras import KerasModel

    df, x = frame
    model = _compiled(
        keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")]),
        "sparse_categorical_crossentropy",
    )
    fitted = KerasModel.from_keras(model, feature_columns=["vec"], inference_batch_size=7)
    out = fitted.transform(df)
    types = dict(out.dtypes)
    assert out.columns == [*df.columns, "rawPrediction", "probability", "prediction"]
    assert (types["rawPrediction"], types["probability"], types["prediction"]) == (
        "array<float>",
        "array<float>",
        "double",
    )
    scored = _sorted(out)
    expected = model.predict(x, verbose=0)
    probability = np.stack(scored["probability"].to_numpy())
    np.testing.assert_allclose(probability, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.stack(scored["rawPrediction"].to_numpy()), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(scored["prediction"].to_numpy(), expected.argmax(axis=1).astype(float))


def test_binary_and_logit_classifiers_give_class_probabilities(frame):
    import keras

    from cerebro_spark.keras import KerasModel

    df, x = frame
    sigmoid = _compiled(
        keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")]),
        "binary_crossentropy",
    )
    logits = _compiled(
        keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    binary = _sorted(
        KerasModel.from_keras(sigmoid, feature_columns=["arr"], output_type="vector").transform(df)
    )
    p = sigmoid.predict(x, verbose=0)[:, 0]
    probability = np.stack([v.toArray() for v in binary["probability"]])
    np.testing.assert_allclose(probability, np.stack([1 - p, p], axis=1), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(binary["prediction"].to_numpy(), (p > 0.5).astype(float))

    from_logits = _sorted(KerasModel.from_keras(logits, feature_columns=["vec"]).transform(df))
    z = logits.predict(x, verbose=0)
    softmax = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(np.stack(from_logits["probability"].to_numpy()), softmax, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.stack(from_logits["rawPrediction"].to_numpy()), z, rtol=1e-5, atol=1e-6)


def test_vector_output_type_feeds_spark_ml_evaluators(spark, frame):
    import keras
    from pyspark.ml.evaluation import BinaryClassificationEvaluator
    from pyspark.ml.linalg import VectorUDT
    from pyspark.sql import functions as F

    from cerebro_spark.keras import KerasModel

    df, x = frame
    model = _compiled(
        keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")]),
        "categorical_crossentropy",
    )
    fitted = KerasModel.from_keras(
        model, feature_columns=["vec"], output_type="vector", raw_prediction_col=""
    )
    out = fitted.transform(df.withColumn("label", (F.col("id") % 2).cast("double")))
    assert "rawPrediction" not in out.columns
    assert isinstance(out.schema["probability"].dataType, VectorUDT)
    auc = BinaryClassificationEvaluator(rawPredictionCol="probability").evaluate(out)
    assert 0.0 <= auc <= 1.0


def test_regression_and_multi_output_models_get_one_column_per_output(frame):
    import keras

    from cerebro_spark.keras import KerasModel

    df, x = frame
    single = _compiled(keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)]), "mse")
    several = _compiled(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]), "mse")
    inp = keras.Input((4,), name="arr")
    two = keras.Model(
        inp, [keras.layers.Dense(1, name="r")(inp), keras.layers.Dense(3, activation="softmax")(inp)]
    )
    two.compile(optimizer="adam", loss=["mse", "sparse_categorical_crossentropy"])
    two.optimizer.build(two.trainable_variables)

    out = KerasModel.from_keras(single, feature_columns=["vec"]).transform(df)
    assert out.columns[-1] == "prediction" and dict(out.dtypes)["prediction"] == "double"
    np.testing.assert_allclose(
        _sorted(out)["prediction"], single.predict(x, verbose=0)[:, 0], rtol=1e-5, atol=1e-6
    )

    arrays = KerasModel.from_keras(several, feature_columns=["vec"]).transform(df)
    assert dict(arrays.dtypes)["prediction"] == "array<float>"
    forced = KerasModel.from_keras(several, feature_columns=["vec"], task="classification").transform(df)
    assert forced.columns[-3:] == ["rawPrediction", "probability", "prediction"]

    multi = KerasModel.from_keras(two, feature_columns=["arr"], probability_col="")
    scored = _sorted(multi.transform(df))
    assert list(scored.columns[-3:]) == ["prediction_0", "rawPrediction_1", "prediction_1"]
    reg, cls = two.predict(x, verbose=0)
    np.testing.assert_allclose(scored["prediction_0"], reg[:, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(scored["prediction_1"], cls.argmax(axis=1).astype(float))


def test_transform_is_lazy_and_runs_the_model_once_per_row(frame, count_jobs):
    import keras

    from cerebro_spark.keras import KerasModel

    df, _ = frame
    model = _compiled(
        keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")]),
        "sparse_categorical_crossentropy",
    )
    fitted = KerasModel.from_keras(model, feature_columns=["vec"])
    holder = {}
    assert (
        count_jobs(lambda: holder.setdefault("out", fitted.transform(df))) == 0
    )  # nothing runs, nothing collected
    plan = holder["out"]._jdf.queryExecution().executedPlan().toString()
    assert plan.count("ArrowEvalPython") == 1 and plan.count("predict(") == 1  # three columns, one UDF call


def test_model_is_loaded_once_per_worker_process():
    import keras

    from cerebro_spark.ml import _inference
    from cerebro_spark.training.keras_io import model_to_bytes

    data = model_to_bytes(_compiled(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]), "mse"))
    first = _inference._load("digest-a", data, b"")
    assert _inference._load("digest-a", data, b"") is first
    assert _inference._load("digest-b", data, b"") is not first  # another model replaces it


def test_transform_errors_name_the_column_or_param(frame):
    import keras

    from cerebro_spark.keras import KerasModel

    df, _ = frame
    model = _compiled(keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)]), "mse")
    with pytest.raises(DataError, match=r"\['missing'\] not found"):
        KerasModel.from_keras(model, feature_columns=["missing"]).transform(df)
    with pytest.raises(DataError, match="Feature column 'text' must hold rows with 1 dimension"):
        KerasModel.from_keras(model, feature_columns=["text"]).transform(df)
    with pytest.raises(
        InvalidParamError, match="'output_type' param of KerasModel must be one of 'array', 'vector'"
    ):
        KerasModel.from_keras(model, feature_columns=["vec"], output_type="list").transform(df)
    with pytest.raises(InvalidParamError, match="task='classification' needs model outputs of shape"):
        nested = keras.Sequential([keras.Input((4,)), keras.layers.Reshape((2, 2))])
        KerasModel.from_keras(
            _compiled(nested, "mse"), feature_columns=["vec"], task="classification"
        ).transform(df)
