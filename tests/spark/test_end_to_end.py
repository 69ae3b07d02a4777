"""End to end on a real local Spark: real Keras models, real Parquet in a real Store, MOP on barrier tasks."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.spark, pytest.mark.keras]

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from quickstart import estimator_gen_fn  # noqa: E402
from synthetic import make_dataframe  # noqa: E402


@pytest.fixture(scope="module")
def rows_20k(spark):
    df = make_dataframe(spark, 20_000, seed=3).cache()
    df.count()
    yield df
    df.unpersist()


def grid_search(store, backend, **overrides):
    from cerebro_spark.tune import GridSearch, hp_choice

    params = dict(
        backend=backend, store=store, estimator_gen_fn=estimator_gen_fn,
        search_space={"width": hp_choice([8, 64]), "lr": hp_choice([3e-2, 1e-2, 3e-3, 1e-3]), "batch_size": 64},
        num_epochs=3, evaluation_metric="val_accuracy", validation=0.2,
        feature_columns=["features"], label_columns=["label"], seed=11, verbose=0,
    )  # fmt: skip
    params.update(overrides)
    return GridSearch(**params)


def assert_exact_schedule(units, models, epochs, partitions):
    """Every model on every partition exactly once per epoch, for training and for evaluation."""
    for kind in ("train", "eval"):
        seen = Counter((u["model_id"], u["epoch"], u["partition"]) for u in units if u["kind"] == kind)
        expected = {(m, e, p) for m in models for e in range(1, epochs + 1) for p in range(partitions)}
        assert set(seen) == expected, kind
        assert set(seen.values()) == {1}, kind


def test_grid_of_8_models_x_3_epochs_on_local_2(spark, rows_20k, store):
    from cerebro_spark import SparkBackend
    from cerebro_spark.store import layout

    result = grid_search(store, SparkBackend(spark, num_workers=2)).fit(rows_20k)

    history = result.get_all_model_history()
    assert len(history) == 8
    for series in history.values():
        for metric in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert len(series[metric]) == 3 and all(np.isfinite(series[metric]))
    journal = [json.loads(line) for line in store.read_text(layout.journal_key(result.run_id)).splitlines()]
    assert_exact_schedule(journal, history.keys(), epochs=3, partitions=2)
    assert all(u["partition"] == u["worker_id"] for u in journal)
    # the model hops: each model trains on both workers
    assert all(
        {u["worker_id"] for u in journal if u["model_id"] == m and u["kind"] == "train"} == {0, 1}
        for m in history
    )

    board = result.leaderboard()
    best = result.get_best_model()
    assert board.iloc[0]["model_id"] == result.best_model_id
    assert board["val_accuracy"].iloc[0] == max(max(s["val_accuracy"]) for s in history.values())
    assert board["val_accuracy"].iloc[0] > 0.75  # the rule is learnable: far above the ~0.6 majority class
    # a binary classifier: the probabilities and the class index
    scored = best.transform(rows_20k.limit(500)).toPandas()
    expected = best.keras().predict(np.stack(scored["features"].to_numpy()), verbose=0).reshape(-1)
    probability = np.stack(scored["probability"].to_numpy())[:, 1]
    np.testing.assert_allclose(probability, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(scored["prediction"].to_numpy(), (expected > 0.5).astype(float))


def test_same_seed_gives_identical_histories(spark, store):
    from cerebro_spark import SparkBackend
    from cerebro_spark.tune import hp_choice

    df = make_dataframe(spark, 2_000, seed=5)
    space = {"width": hp_choice([8, 16]), "lr": hp_choice([1e-2, 1e-3]), "batch_size": 32}
    runs = [
        grid_search(
            store, SparkBackend(spark, num_workers=2), search_space=space, num_epochs=2, run_id=f"same-{i}"
        )
        .fit(df)
        .get_all_model_history()
        for i in range(2)
    ]
    assert runs[0] == runs[1]
    other = grid_search(
        store, SparkBackend(spark, num_workers=2), search_space=space, num_epochs=2, seed=12
    ).fit(df)
    assert other.get_all_model_history() != runs[0]


@pytest.mark.petastorm
def test_keras_estimator_fit_and_transform(spark, store):
    import keras

    from cerebro_spark import LocalBackend
    from cerebro_spark.keras import KerasEstimator, KerasModel

    df = make_dataframe(spark, 1_000, seed=9)
    model = keras.Sequential(
        [
            keras.Input((20,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    est = KerasEstimator(model=model, optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy",
                         metrics=["accuracy"], batch_size=32, feature_columns=["features"], label_columns=["label"],
                         store=store, backend=LocalBackend(2), validation=0.25, num_epochs=2, seed=1, verbose=0)  # fmt: skip
    fitted = est.fit(df)
    assert isinstance(fitted, KerasModel)
    assert len(fitted.history["loss"]) == len(fitted.history["val_accuracy"]) == 2
    out = fitted.transform(df)
    assert out.columns == [*df.columns, "rawPrediction", "probability", "prediction"]
    predictions = np.array([r["prediction"] for r in out.select("prediction").collect()])
    assert predictions.shape == (1000,) and set(predictions) <= {0.0, 1.0}


def test_grid_on_local_cluster(tmp_path):
    """The same workload on two real executor JVMs (a separate process: one SparkContext per process)."""
    from local_cluster import run_quickstart

    store = tmp_path / "store"
    proc = run_quickstart("--store", str(store), "--rows", "20000", "--epochs", "3")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "Leaderboard" in proc.stdout
    (run_dir,) = list((store / "runs").iterdir())
    record = json.loads((run_dir / "search.json").read_text())
    assert record["status"] == "completed" and len(record["models"]) == 8
    assert all(m["epochs"] == 3 for m in record["models"].values())
    journal = [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()]
    assert_exact_schedule(journal, record["models"].keys(), epochs=3, partitions=2)
    assert len({u["worker_id"] for u in journal}) == 2


def test_random_search_result_api(spark, store):
    from cerebro_spark import LocalBackend
    from cerebro_spark.search import sample
    from cerebro_spark.tune import RandomSearch, hp_choice, hp_loguniform

    df = make_dataframe(spark, 600, seed=2)
    space = {"width": hp_choice([4, 8]), "lr": hp_loguniform(1e-3, 1e-1), "batch_size": 32}
    search = RandomSearch(backend=LocalBackend(2), store=store, estimator_gen_fn=estimator_gen_fn,
                          search_space=space, num_models=3, num_epochs=2, validation=0.2,
                          feature_columns=["features"], label_columns=["label"], seed=4, verbose=0)  # fmt: skip
    result = search.fit(df)

    params = result.get_all_model_params()
    assert list(params.values()) == sample(space, 3, seed=4)  # the seeded configurations
    assert len({p["lr"] for p in params.values()}) == 3 and all(
        1e-3 <= p["lr"] <= 1e-1 for p in params.values()
    )
    assert set(result.get_all_models()) == set(params)
    histories = result.get_all_model_history()
    best_loss = min(min(h["val_loss"]) for h in histories.values())  # evaluation_metric defaults to val_loss
    assert min(result.get_history()["val_loss"]) == best_loss
    best = result.get_best_model()
    assert result.get_history() == best.history and result.keras() is best.keras()
    assert result.leaderboard()["model_id"].iloc[0] == result.best_model_id
