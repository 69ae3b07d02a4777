"""Prediction-output params set on an estimator or a search reach the fitted models, and survive save/load."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.spark, pytest.mark.keras]

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

from synthetic import make_dataframe  # noqa: E402

OUTPUT = {"prediction_col": "cls", "probability_col": "p", "raw_prediction_col": "", "output_type": "vector"}


def classifier():
    import keras

    keras.utils.set_random_seed(4)
    return keras.Sequential([keras.Input((20,)), keras.layers.Dense(4, activation="relu"),
                             keras.layers.Dense(1, activation="sigmoid")])  # fmt: skip


def estimator(store, **params):
    import keras

    from cerebro_spark import LocalBackend
    from cerebro_spark.keras import KerasEstimator

    settings = {"batch_size": 32, "backend": LocalBackend(2), "seed": 3, "verbose": 0, "tensorboard": False}
    return KerasEstimator(model=classifier(), optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy",
                          feature_columns=["features"], label_columns=["label"], store=store,
                          **{**settings, **params})  # fmt: skip


def plain_estimator(config):
    return estimator(None)


def output_params(instance):
    return {name: instance.getOrDefault(name) for name in OUTPUT}


def assert_writes_the_asked_columns(model, df):
    from pyspark.ml.linalg import VectorUDT

    out = model.transform(df)
    assert {"cls", "p"} <= set(out.columns) and not {"prediction", "probability", "rawPrediction"} & set(
        out.columns
    )
    assert isinstance(out.schema["p"].dataType, VectorUDT)
    row = out.select("cls", "p").first()
    assert row.cls in (0.0, 1.0) and row.p[int(row.cls)] >= 0.5


@pytest.fixture(scope="module")
def data(spark):
    return make_dataframe(spark, 120, seed=5, num_slices=2)


def test_an_estimators_output_params_reach_its_model(data, store):
    model = estimator(store, **OUTPUT).fit(data)
    assert output_params(model) == OUTPUT
    assert_writes_the_asked_columns(model, data)


def test_each_param_map_of_fit_multiple_gets_its_own_output_params(data, store):
    est = estimator(store)
    maps = [{est.probability_col: "p0"}, {est.probability_col: "p1", est.output_type: "vector"}]
    models = dict(est.fitMultiple(data, maps))
    assert [models[i].getOrDefault("probability_col") for i in (0, 1)] == ["p0", "p1"]
    assert [models[i].getOrDefault("output_type") for i in (0, 1)] == ["array", "vector"]


def test_a_searchs_output_params_reach_every_model_and_survive_continue_training(data, store):
    from cerebro_spark.tune import GridSearch, hp_choice

    def gen(config):
        return estimator(store, batch_size=config["batch_size"])  # its own output params are not used

    search = GridSearch(estimator_gen_fn=gen, search_space={"batch_size": hp_choice([16, 32])}, store=store,
                        backend=estimator(store).getBackend(), feature_columns=["features"],
                        label_columns=["label"], validation=0.25, seed=3, verbose=0, tensorboard=False,
                        **OUTPUT)  # fmt: skip
    result = search.fit(data)
    assert output_params(result) == OUTPUT
    assert all(output_params(m) == OUTPUT for m in result.get_all_models().values())
    assert_writes_the_asked_columns(result, data)

    result.set(result.probability_col, "q")  # set on the fitted selection: continue_training keeps it
    more = result.continue_training(epochs=1)
    assert output_params(more) == {**OUTPUT, "probability_col": "q"}
    assert output_params(more.get_best_model()) == {**OUTPUT, "probability_col": "q"}


def test_save_and_load_keep_the_output_params_and_older_saves_get_the_defaults(spark, tmp_path, store):
    from cerebro_spark.keras import KerasEstimator
    from cerebro_spark.tune import GridSearch

    est = estimator(store, **OUTPUT)
    search = GridSearch(
        estimator_gen_fn=plain_estimator, search_space={}, store=store, task="regression", **OUTPUT
    )
    for instance, cls in ((est, KerasEstimator), (search, GridSearch)):
        path = str(tmp_path / cls.__name__)
        instance.write().overwrite().save(path)
        assert output_params(cls.load(path, trust_pickles=True)) == OUTPUT

        # a save of the version before: no output params on estimators and searches
        metadata_file = next(Path(path, "metadata").glob("part-*"))
        metadata = json.loads(metadata_file.read_text())
        for section in ("paramMap", "defaultParamMap"):
            for name in ("probability_col", "raw_prediction_col", "output_type", "task"):
                metadata[section].pop(name, None)
        metadata_file.write_text(json.dumps(metadata))
        for checksum in Path(path, "metadata").glob(".*.crc"):  # Hadoop's checksum of the old text
            checksum.unlink()
        old = cls.load(path, trust_pickles=True)
        assert output_params(old) == {**OUTPUT, "probability_col": "probability", "raw_prediction_col": "rawPrediction",
                                      "output_type": "array"}  # fmt: skip
        assert old.getOrDefault("task") == "auto"


def test_task_classification_on_outputs_without_classes_fails_before_training(spark, store):
    import keras

    from cerebro_spark.errors import InvalidParamError

    df = spark.createDataFrame(
        [([0.5, 1.0], [1.0, 0.0, 2.0, 1.0])] * 8, "features array<float>, label array<float>"
    )
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(4), keras.layers.Reshape((2, 2))])
    est = estimator(store, task="classification")
    est.setParams(model=model, loss="mse")
    with pytest.raises(
        InvalidParamError, match=r"task='classification' needs model outputs of shape \(classes,\)"
    ):
        est.fit(
            df.selectExpr("features", "array(array(label[0], label[1]), array(label[2], label[3])) AS label")
        )
    assert not store.exists("data") and not store.exists("runs")  # nothing prepared, nothing trained
