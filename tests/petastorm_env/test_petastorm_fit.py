"""Training with reader="petastorm" on a real local Spark: executors read their partitions with Petastorm."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.spark, pytest.mark.keras]

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

from quickstart import estimator_gen_fn  # noqa: E402
from synthetic import make_dataframe  # noqa: E402


def test_petastorm_and_pyarrow_readers_train_alike_on_spark(spark, store):
    from cerebro_spark import SparkBackend
    from cerebro_spark.tune import GridSearch, hp_choice

    df = make_dataframe(spark, 600, seed=4)
    histories = {}
    for reader in ("pyarrow", "petastorm"):
        search = GridSearch(
            backend=SparkBackend(spark, num_workers=2), store=store, estimator_gen_fn=estimator_gen_fn,
            search_space={"width": hp_choice([4, 8]), "lr": 1e-2, "batch_size": 32}, num_epochs=2,
            validation=0.25, feature_columns=["features"], label_columns=["label"], seed=5, verbose=0,
            tensorboard=False, reader=reader, run_id=f"reader-{reader}",
        )  # fmt: skip
        histories[reader] = search.fit(df).get_all_model_history()
    assert len(histories["petastorm"]) == 2
    assert all(len(h["val_accuracy"]) == 2 for h in histories["petastorm"].values())
    assert histories["petastorm"] == histories["pyarrow"]  # the same rows in the same order
