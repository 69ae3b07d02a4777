"""pyspark's TrainValidationSplit over a KerasEstimator: every param map trains in one MOP search."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.spark, pytest.mark.keras]

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

from synthetic import make_dataframe  # noqa: E402


def test_train_validation_split_trains_all_param_maps_as_one_search(spark, store):
    import keras
    from pyspark.ml.evaluation import BinaryClassificationEvaluator
    from pyspark.ml.tuning import ParamGridBuilder, TrainValidationSplit

    from cerebro_spark import LocalBackend
    from cerebro_spark.keras import KerasEstimator, KerasModel

    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])  # fmt: skip
    est = KerasEstimator(model=model, optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy",
                         batch_size=32, feature_columns=["features"], label_columns=["label"], store=store,
                         backend=LocalBackend(2), seed=3, verbose=0, tensorboard=False,
                         output_type="vector")  # fmt: skip
    grid = ParamGridBuilder().addGrid(est.batch_size, [16, 64]).addGrid(est.num_epochs, [2]).build()
    # the evaluator reads the probability vector the fitted models write (output_type="vector")
    evaluator = BinaryClassificationEvaluator(rawPredictionCol="probability", labelCol="label")
    tvs = TrainValidationSplit(
        estimator=est, estimatorParamMaps=grid, evaluator=evaluator, trainRatio=0.75, seed=1
    )
    tvs_model = tvs.fit(make_dataframe(spark, 400, seed=6, num_slices=2))

    auc = tvs_model.validationMetrics  # grid order: batch size 16, 64
    assert len(auc) == 2 and min(auc) > 0.75
    assert isinstance(tvs_model.bestModel, KerasModel)
    assert tvs_model.bestModel.getOrDefault("output_type") == "vector"
    runs = store.listdir("runs")
    assert len(runs) == 2  # both param maps in one search, then the refit of the best on all rows
    assert sorted(len(store.listdir(f"runs/{r}/models")) for r in runs) == [1, 2]
    for run in runs:  # each model trained with its own param map
        record = store.read_json(f"runs/{run}/search.json")
        for entry in record["models"].values():
            assert entry["status"] == "completed" and entry["epochs"] == 2
            assert entry["params"].get("batch_size") in (None, 16, 64)
    search = next(
        store.read_json(f"runs/{r}/search.json") for r in runs if len(store.listdir(f"runs/{r}/models")) == 2
    )
    assert sorted(m["params"]["batch_size"] for m in search["models"].values()) == [16, 64]
