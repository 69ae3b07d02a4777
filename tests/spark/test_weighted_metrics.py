"""KerasEstimator(weighted_metrics=...): metrics weighted by the sample weight column, in the history and
as a search's evaluation metric."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.spark, pytest.mark.keras]

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

from synthetic import make_rows  # noqa: E402


def estimator_gen_fn(config):
    import keras

    from cerebro_spark.keras import KerasEstimator

    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(4, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])  # fmt: skip
    return KerasEstimator(model=model, optimizer=keras.optimizers.Adam(config["lr"]), loss="binary_crossentropy",
                          metrics=["accuracy"], weighted_metrics=["accuracy"], batch_size=16)  # fmt: skip


def test_weighted_accuracy_weighs_rows_and_ranks_a_search(spark, store):
    from cerebro_spark import LocalBackend
    from cerebro_spark.tune import GridSearch, hp_choice

    x, y = make_rows(240, seed=8)
    weight = np.where(y == 1, 5.0, 1.0)  # positives count five times in the weighted metric
    is_val = np.arange(len(y)) % 4 == 0
    rows = [
        (f.tolist(), int(label), float(w), bool(v))
        for f, label, w, v in zip(x, y, weight, is_val, strict=True)
    ]
    df = spark.createDataFrame(rows, "features array<float>, label long, w double, is_val boolean")

    # one worker: one validation partition, so the history holds Keras' own value on the whole split
    search = GridSearch(estimator_gen_fn=estimator_gen_fn, search_space={"lr": hp_choice([1e-3, 3e-2])},
                        evaluation_metric="val_weighted_accuracy", feature_columns=["features"],
                        label_columns=["label"], sample_weight_column="w", validation="is_val", store=store,
                        backend=LocalBackend(1), seed=3, verbose=0, tensorboard=False)  # fmt: skip
    result = search.fit(df)

    histories = result.get_all_model_history()
    for history in histories.values():
        assert {"weighted_accuracy", "val_weighted_accuracy", "accuracy", "val_accuracy"} <= set(history)
    best = max(histories, key=lambda m: histories[m]["val_weighted_accuracy"][-1])
    assert result.best_model_id == best  # ranked by the weighted metric, larger is better

    # the expected values, from the best model's own predictions on the validation rows
    model = result.get_best_model().keras()
    predicted = model.predict(x[is_val], verbose=0)[:, 0] > 0.5
    correct = (predicted == (y[is_val] == 1)).astype(np.float64)
    expected_weighted = float(np.sum(weight[is_val] * correct) / np.sum(weight[is_val]))
    history = histories[best]
    assert history["val_accuracy"][-1] == pytest.approx(float(correct.mean()), abs=1e-5)
    assert history["val_weighted_accuracy"][-1] == pytest.approx(expected_weighted, abs=1e-5)
    assert abs(expected_weighted - correct.mean()) > 0.01  # the weights made a difference
