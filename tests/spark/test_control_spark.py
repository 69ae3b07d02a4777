"""Resume, continue_training and the live handle on a real local Spark with real Keras models.

Histories are compared for exact equality: with a seed the run is deterministic (TF op determinism,
per-unit data order and initial weights from the seed, epoch means summed exactly), and a resumed
model restarts from a checkpoint that holds its full state (weights and optimizer), so no float
may differ.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest

pytestmark = [pytest.mark.spark, pytest.mark.keras]

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from synthetic import make_dataframe  # noqa: E402


def tiny_gen_fn(params):
    import keras

    from cerebro_spark.keras import KerasEstimator

    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(4, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])  # fmt: skip
    return KerasEstimator(model=model, optimizer=keras.optimizers.Adam(params["lr"]), loss="binary_crossentropy",
                          metrics=["accuracy"], batch_size=16)  # fmt: skip


@pytest.fixture(scope="module")
def rows(spark):
    df = make_dataframe(spark, 200, seed=1, num_slices=2).cache()
    df.count()
    yield df
    df.unpersist()


def grid(store, backend, run_id, epochs=3):
    from cerebro_spark.tune import GridSearch, hp_choice

    return GridSearch(
        backend=backend, store=store, estimator_gen_fn=tiny_gen_fn, search_space={"lr": hp_choice([1e-2, 5e-2])},
        num_epochs=epochs, evaluation_metric="val_loss", validation=0.25, feature_columns=["features"],
        label_columns=["label"], seed=7, verbose=0, run_id=run_id, tensorboard=False,
    )  # fmt: skip


def journal(store, run_id):
    from cerebro_spark.store import layout

    return [json.loads(line) for line in store.read_text(layout.journal_key(run_id)).splitlines()]


def each_unit_once(store, run_id):
    counts = Counter((u["model_id"], u["epoch"], u["partition"], u["kind"]) for u in journal(store, run_id))
    return bool(counts) and set(counts.values()) == {1}


def test_grid_search_interrupted_after_its_first_epoch_resumes_to_the_same_histories(spark, rows, store):
    from cerebro_spark import SparkBackend
    from cerebro_spark.driver import DriverCallback
    from cerebro_spark.store import layout

    class CtrlCAfterFirstEpoch(DriverCallback):
        def on_epoch_end(self, record):
            raise KeyboardInterrupt

    reference = grid(store, SparkBackend(spark, num_workers=2), "reference").fit(rows)
    with pytest.raises(KeyboardInterrupt):
        grid(store, SparkBackend(spark, num_workers=2), "resumed")._run(
            rows, callbacks=[CtrlCAfterFirstEpoch()]
        )
    assert store.read_json(layout.run_record_key("resumed"))["status"] == "interrupted"
    done_before = len(journal(store, "resumed"))
    assert 4 <= done_before < 2 * 3 * 4  # at least the first epoch of a model, far from all

    resumed = grid(store, SparkBackend(spark, num_workers=2), "resumed").fit(rows)
    assert resumed.get_all_model_history() == reference.get_all_model_history()  # exactly
    assert resumed.best_model_id == reference.best_model_id
    assert each_unit_once(store, "resumed") and len(journal(store, "resumed")) == 2 * 3 * 4
    assert store.read_json(layout.run_record_key("resumed"))["status"] == "completed"


def test_continue_training_equals_training_longer_from_the_start(spark, rows, store):
    from cerebro_spark import LocalBackend  # in-process workers: the Spark part here is the data

    result = grid(store, LocalBackend(2), "short", epochs=2).fit(rows)
    more = result.continue_training(models=["m0001"], epochs=2)
    assert more.run_id == "short" and more is not result
    history = more.get_all_model_history()
    assert len(history["m0001"]["val_loss"]) == 4 and len(history["m0000"]["val_loss"]) == 2
    assert result.get_all_model_history()["m0001"]["val_loss"] == history["m0001"]["val_loss"][:2]
    assert each_unit_once(store, "short")
    assert len(store.listdir("data")) == 1  # the prepared data was reused, not prepared again
    # the same as a search that trained 4 epochs from the start
    longer = grid(store, LocalBackend(2), "long", epochs=4).fit(rows)
    assert history["m0001"] == longer.get_all_model_history()["m0001"]
    assert more.get_model("m0001").keras() is not None


def test_live_handle_stops_a_model_and_adds_one(spark, rows, store):
    from cerebro_spark import SparkBackend

    handle = grid(store, SparkBackend(spark, num_workers=2), "live", epochs=2).fit_async(rows)
    # sent before the first unit: they apply as soon as the driver starts, whatever the timing
    stop = handle.stop_model("m0001")
    add = handle.add_models([{"lr": 2e-2}], epochs=1)
    result = handle.result(timeout=600)
    assert stop.result() is None and add.result() == ["u0000"]
    models = result.get_all_model_history()
    assert set(models) == {"m0000", "m0001", "u0000"}
    assert len(models["u0000"]["val_loss"]) == 1 and models["m0001"] == {}
    units = journal(store, "live")
    assert {u["model_id"] for u in units} == {"m0000", "u0000"}
    events = [json.loads(line) for line in store.read_text("runs/live/events.jsonl").splitlines()]
    assert [e["command"]["kind"] for e in events] == ["stop", "add"]
    status = handle.status()
    assert status["state"] == "finished" and status["models"]["m0001"]["status"] == "stopped"
    assert list(handle.leaderboard().model_id)[-1] == "m0001"  # no epoch: last
