"""Worker-side training with real Keras models and real Parquet files, on the in-process backend."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cerebro_spark.backend.local import LocalBackend
from cerebro_spark.data.spec import ColumnSpec, DatasetSpec, PartitionSpec
from cerebro_spark.driver import MopDriver, RunSettings
from cerebro_spark.search import GridSearchAlgorithm, hp_choice

pytestmark = pytest.mark.keras


def write_dataset(store, rows_per_partition=120, partitions=2, seed=0) -> DatasetSpec:
    rng = np.random.default_rng(seed)
    parts = {"train": [], "val": []}
    for split, rows in (("train", rows_per_partition), ("val", rows_per_partition // 3)):
        for i in range(partitions):
            x = rng.standard_normal((rows, 6)).astype(np.float32)
            y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype(np.int64)
            table = pa.table({"x": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), 6), "y": y})
            key = f"data/d0/{split}/part-{i:05d}.parquet"
            with store.atomic_writer(key) as f:
                pq.write_table(table, f)
            parts[split].append(PartitionSpec(key, rows))
    return DatasetSpec("d0", "data/d0", (ColumnSpec("x", "float32", (6,)),), (ColumnSpec("y", "int64"),),
                       tuple(parts["train"]), tuple(parts["val"]))  # fmt: skip


def estimator(params):
    import keras

    from cerebro_spark.keras import KerasEstimator

    keras.utils.set_random_seed(params["init"])
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(params["width"], activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])  # fmt: skip
    return KerasEstimator(model=model, optimizer=keras.optimizers.Adam(params["lr"]),
                          loss="binary_crossentropy", metrics=["accuracy"], batch_size=16)  # fmt: skip


def run(store, run_id, *, share: bool):
    from cerebro_spark.ml._model_io import write_initial_model

    dataset = write_dataset(store)

    def factory(trial):
        spec = write_initial_model(store, run_id, trial.model_id, estimator(trial.params), trial.params)
        return spec if share else dataclasses.replace(spec, structure_key="")

    space = {"width": hp_choice([4, 8]), "lr": hp_choice([1e-2, 1e-1]), "init": 3}
    settings = RunSettings(run_id=run_id, metric="val_accuracy", mode="max", seed=5, deterministic=True)
    driver = MopDriver(LocalBackend(2), store, dataset, GridSearchAlgorithm(space, 2), factory, settings)
    return driver.run(), driver.specs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from cerebro_spark.store.base import Store

    store = Store.create(str(tmp_path_factory.mktemp("trainer") / "store"))
    return store, run(store, "shared", share=True), run(store, "alone", share=False)


def test_states_too_large_to_hand_on_in_memory_go_through_the_store_with_the_same_histories(
    runs, monkeypatch
):
    from cerebro_spark.training import trainer

    store, (in_memory, _), _ = runs
    monkeypatch.setattr(trainer, "INLINE_STATE_MAX_BYTES", 0)  # every state is "too large"
    through_store, _ = run(store, "large", share=True)
    assert {m: r.metric_series() for m, r in through_store.models.items()} == {
        m: r.metric_series() for m, r in in_memory.models.items()
    }


def test_models_sharing_a_traced_structure_train_exactly_as_alone(runs):
    _, (shared, specs), (alone, _) = runs
    assert len({s.structure_key for s in specs.values()}) == 2  # two widths, two learning rates each
    histories = {m: r.metric_series() for m, r in shared.models.items()}
    assert histories == {m: r.metric_series() for m, r in alone.models.items()}
    # the learning rates really differ: the two models of one width end apart
    assert histories["m0000"]["loss"][-1] != histories["m0001"]["loss"][-1]


def test_checkpoint_restores_weights_and_optimizer_state(runs):
    from cerebro_spark.ml._model_io import load_trained_model

    store, (result, specs), _ = runs
    record = result.models["m0003"]
    model = load_trained_model(store, specs["m0003"], record.version)
    assert record.version == 2 * 2  # two epochs of two sub-epochs
    assert int(model.optimizer.iterations.numpy()) == record.version * math.ceil(120 / 16)
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(1e-1)
    x = np.ones((3, 6), np.float32)
    again = load_trained_model(store, specs["m0003"], record.version)
    np.testing.assert_array_equal(model.predict(x, verbose=0), again.predict(x, verbose=0))


def test_a_later_search_reuses_the_models_a_worker_built_and_trains_exactly_the_same(tmp_path):
    """A worker's built (and traced) models outlive a search, as a reused Spark Python worker's do: the
    second search builds nothing, and its histories equal the first's (same seed, other run id)."""
    from cerebro_spark.ml._model_io import write_initial_model
    from cerebro_spark.store.base import Store

    store = Store.create(str(tmp_path / "store"))
    dataset = write_dataset(store)
    backend = LocalBackend(2, keep_caches=True)
    space = {"width": hp_choice([4, 8]), "lr": hp_choice([1e-2, 1e-1]), "init": 3}
    results = []
    for run_id in ("first", "second"):

        def factory(trial, run_id=run_id):
            return write_initial_model(store, run_id, trial.model_id, estimator(trial.params), trial.params)

        settings = RunSettings(run_id=run_id, metric="val_accuracy", mode="max", seed=5, deterministic=True)
        results.append(
            MopDriver(backend, store, dataset, GridSearchAlgorithm(space, 2), factory, settings).run()
        )
    first, second = results
    built = [[u for u in r.units if u.kind == "train" and u.timings["build_s"] > 0] for r in results]
    assert len(built[0]) == 2 * 2 and built[1] == []  # 2 structures on each of 2 workers, then none
    assert {m: r.metric_series() for m, r in second.models.items()} == {
        m: r.metric_series() for m, r in first.models.items()
    }
