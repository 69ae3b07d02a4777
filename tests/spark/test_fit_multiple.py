"""KerasEstimator.fitMultiple: pyspark's CrossValidator over a param grid trains each fold as one MOP search."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cerebro_spark.errors import InvalidParamError

pytestmark = [pytest.mark.spark, pytest.mark.keras]

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

from synthetic import make_dataframe  # noqa: E402


def estimator(store):
    import keras

    from cerebro_spark import LocalBackend
    from cerebro_spark.keras import KerasEstimator

    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])  # fmt: skip
    return KerasEstimator(model=model, optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy",
                          metrics=["accuracy"], batch_size=32, feature_columns=["features"], label_columns=["label"],
                          store=store, backend=LocalBackend(2), num_epochs=1, seed=3, verbose=0)  # fmt: skip


def test_cross_validator_trains_each_fold_as_one_search(spark, store):
    from pyspark.ml.evaluation import BinaryClassificationEvaluator
    from pyspark.ml.tuning import CrossValidator, ParamGridBuilder

    from cerebro_spark.keras import KerasModel

    est = estimator(store)
    grid = ParamGridBuilder().addGrid(est.batch_size, [16, 64]).addGrid(est.num_epochs, [1, 2]).build()
    evaluator = BinaryClassificationEvaluator(rawPredictionCol="prediction", labelCol="label")
    cv = CrossValidator(estimator=est, estimatorParamMaps=grid, evaluator=evaluator, numFolds=2, seed=1)
    cv_model = cv.fit(make_dataframe(spark, 800, seed=6))

    auc = cv_model.avgMetrics  # grid order: (16, 1), (16, 2), (64, 1), (64, 2) as (batch_size, num_epochs)
    assert len(auc) == 4 and max(auc) > 0.75
    assert auc[1] > auc[0] and auc[3] > auc[2]  # a second epoch helps: each model got its own epochs
    assert isinstance(cv_model.bestModel, KerasModel)
    runs = store.listdir("runs")
    assert len(runs) == 3  # one search per fold (4 models each) and the final refit of the best
    models_per_run = sorted(len(store.listdir(f"runs/{r}/models")) for r in runs)
    assert models_per_run == [1, 4, 4]
    for run in runs:  # each model trained the epochs of its own param map (the refit: the best's, 2)
        record = store.read_json(f"runs/{run}/search.json")
        for model in record["models"].values():
            assert model["status"] == "completed" and model["epochs"] == model["params"].get("num_epochs", 2)


def test_models_come_back_in_param_map_order(spark, store):
    est = estimator(store)
    maps = [{est.num_epochs: 2}, {est.num_epochs: 1, est.batch_size: 64}]
    models = dict(est.fitMultiple(make_dataframe(spark, 300, seed=1), maps))
    assert [len(models[i].history["loss"]) for i in (0, 1)] == [2, 1]


def test_data_params_cannot_vary_between_param_maps(spark, store):
    est = estimator(store)
    with pytest.raises(InvalidParamError, match=r"\['feature_columns'\] cannot vary between param maps"):
        list(est.fitMultiple(make_dataframe(spark, 100, seed=1), [{est.feature_columns: ["label"]}]))
