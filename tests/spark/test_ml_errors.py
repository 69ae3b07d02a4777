"""Bad input to the Spark ML classes fails with a clear message before any Spark job or training.

A bad ``estimator_gen_fn`` is found while the data is prepared beside the model builds (the
preparation's jobs run while TensorFlow loads): it fails before any training and cancels them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cerebro_spark.errors import DataError, InvalidParamError, SearchSpaceError

pytestmark = [pytest.mark.spark, pytest.mark.keras]

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

from quickstart import estimator_gen_fn  # noqa: E402


@pytest.fixture(scope="module")
def df(spark):
    from synthetic import make_dataframe

    return make_dataframe(spark, 200, seed=1)


def search(store_, **overrides):
    from cerebro_spark import LocalBackend
    from cerebro_spark.tune import GridSearch, hp_choice

    params = dict(
        backend=LocalBackend(2), store=store_, estimator_gen_fn=estimator_gen_fn,
        search_space={"width": hp_choice([4]), "lr": hp_choice([1e-2]), "batch_size": 16},
        num_epochs=1, evaluation_metric="val_loss", validation=0.25,
        feature_columns=["features"], label_columns=["label"], seed=1, verbose=0,
    )  # fmt: skip
    params.update(overrides)
    return GridSearch(**params)


def not_an_estimator(params):
    return {"lr": params["lr"]}


def wrong_input_shape(params):
    import keras

    from cerebro_spark.keras import KerasEstimator

    model = keras.Sequential([keras.Input((7,)), keras.layers.Dense(1, activation="sigmoid")])
    return KerasEstimator(model=model, loss="binary_crossentropy")


CASES = [
    ({"store": None}, InvalidParamError, r"'store' param of GridSearch must be a cerebro_spark Store .*required.*Received: None"),
    ({"feature_columns": []}, InvalidParamError, r"'feature_columns' .* non-empty list .*Received: \[\]"),
    ({"num_epochs": 0}, InvalidParamError, r"'num_epochs' param of GridSearch must be an int >= 1\. Received: 0"),
    ({"validation": 1.5}, InvalidParamError, r"'validation' .*fraction in \[0, 1\).*Received: 1\.5"),
    ({"mode": "up"}, InvalidParamError, r"'mode' .*one of 'auto', 'min', 'max'\. Received: 'up'"),
    ({"evaluation_metric": "val_fancy"}, InvalidParamError, r"cannot be inferred for metric 'val_fancy': pass mode='min' or mode='max'"),
    ({"validation": None}, InvalidParamError, r"'val_loss' needs validation data, but validation is None"),
    ({"search_space": {}}, SearchSpaceError, r"empty"),
    ({"estimator_gen_fn": "train.py"}, InvalidParamError, r"'estimator_gen_fn' .* must be a function .*Received: 'train.py'"),
    ({"feature_columns": ["nope"]}, DataError, r"nope"),
    ({"validation": "label"}, DataError, r"boolean"),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "error", "message"), CASES, ids=[str(c[0])[:40] for c in CASES])
def test_bad_input_fails_before_any_spark_job(df, store, count_jobs, overrides, error, message):
    caught = {}

    def fit():
        with pytest.raises(error, match=message) as info:
            search(store, **overrides).fit(df)
        caught["error"] = info.value

    assert count_jobs(fit) == 0
    assert store.listdir("runs") == []  # nothing was written for a run


def test_bad_estimator_gen_fn_fails_before_training_and_leaves_no_job(spark, df, store):
    with pytest.raises(
        InvalidParamError,
        match=r"estimator_gen_fn must return a KerasEstimator\. Received: dict for the configuration \{'width': 4",
    ):
        search(store, estimator_gen_fn=not_an_estimator).fit(df)
    assert (
        spark.sparkContext.statusTracker().getActiveJobsIds() == []
    )  # the preparation was cancelled or done
    assert store.listdir("runs") == []


def test_model_that_does_not_fit_the_data_is_refused_before_training(df, store):
    with pytest.raises(
        DataError, match=r"expects input shape \(7,\) .* column 'features' has rows of shape \(20,\)"
    ):
        search(store, estimator_gen_fn=wrong_input_shape).fit(df)
    assert store.listdir("runs") == []


def test_a_model_refused_after_the_workers_started_stops_them(spark, df, store):
    # On a SparkBackend the workers start as soon as the data is ready, while the driver still checks
    # the models: a model that does not fit the data stops them again.
    from cerebro_spark import SparkBackend

    backend = SparkBackend(spark, num_workers=2)
    with pytest.raises(DataError, match=r"expects input shape \(7,\)"):
        search(store, backend=backend, estimator_gen_fn=wrong_input_shape).fit(df)
    assert not backend.is_running
    assert spark.sparkContext.statusTracker().getActiveJobsIds() == []
    assert store.listdir("runs") == []


def test_keras_estimator_params_are_checked(df, store):
    import keras

    from cerebro_spark.keras import KerasEstimator

    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(1)])
    base = dict(model=model, loss="mse", feature_columns=["features"], label_columns=["label"], store=store)
    with pytest.raises(
        InvalidParamError, match=r"'batch_size' param of KerasEstimator must be an int >= 1\. Received: 0"
    ):
        KerasEstimator(**base, batch_size=0).fit(df)
    with pytest.raises(
        InvalidParamError, match=r"'model' param of KerasEstimator must be a keras\.Model\. Received: str"
    ):
        KerasEstimator(**{**base, "model": "model.keras"}).fit(df)
    with pytest.raises(InvalidParamError, match=r"needs a loss"):
        KerasEstimator(**{**base, "loss": None}).fit(df)


def test_data_preparation_jobs_are_named_for_the_run(spark, df, store, job_descriptions):
    result = search(store, run_id="named-prep").fit(df)
    assert "cerebro_spark run named-prep: preparing data" in job_descriptions()
    assert spark.sparkContext.getLocalProperty("spark.job.description") is None  # restored after fit
    assert result.run_id == "named-prep"
