"""The MOP driver on the in-process backend with fake tasks: no Spark, no TensorFlow."""

from __future__ import annotations

import json

import pytest

from cerebro_spark.backend.local import LocalBackend
from cerebro_spark.driver import MopDriver, RunSettings
from cerebro_spark.errors import TrainingError
from cerebro_spark.search import Decision, GridSearchAlgorithm, hp_choice
from cerebro_spark.store import layout
from cerebro_spark.testing.fakes import fake_dataset, fake_tasks
from cerebro_spark.training.model_spec import ModelSpec

FAKES = fake_tasks()


def make_driver(store, space, *, workers=2, epochs=3, seed=1, metric="val_loss", mode="min", val_rows=10):
    def factory(trial):
        return ModelSpec(run_id="r1", model_id=trial.model_id, batch_size=8, params=dict(trial.params))

    settings = RunSettings(run_id="r1", metric=metric, mode=mode, seed=seed)
    algo = GridSearchAlgorithm(space, num_epochs=epochs)
    return MopDriver(
        LocalBackend(workers), store, fake_dataset(workers, val_rows), algo, factory, settings, tasks=FAKES
    )


def test_every_model_trains_on_every_partition_once_per_epoch(store):
    driver = make_driver(store, {"rate": hp_choice([0.5, 1.0, 2.0, 4.0, 8.0])}, workers=3, epochs=3)
    result = driver.run()
    assert len(result.models) == 5
    for model_id, record in result.models.items():
        assert record.status == "completed"
        assert [e.epoch for e in record.history] == [1, 2, 3]
        for epoch in (1, 2, 3):
            for kind in ("train", "eval"):
                parts = sorted(
                    u.partition
                    for u in result.units
                    if (u.model_id, u.epoch, u.kind) == (model_id, epoch, kind)
                )
                assert parts == [0, 1, 2], (model_id, epoch, kind)
        assert {"loss", "val_loss", "val_accuracy"} <= set(record.history[-1].metrics)
    # every unit ran on the worker that holds its partition
    assert all(u.partition == u.worker_id for u in result.units)


def test_best_model_follows_metric_direction(store):
    space = {"rate": hp_choice([0.5, 8.0, 2.0])}
    assert make_driver(store, space, metric="val_loss", mode="min").run().best_model_id == "m0001"
    result = make_driver(store, space, metric="val_loss", mode="max").run()
    assert result.best_model_id == "m0000"  # the worst loss is "best" when asked to maximize


def test_records_written_to_the_store(store):
    result = make_driver(store, {"rate": hp_choice([1.0, 2.0])}, epochs=2).run()
    journal = store.read_text(layout.journal_key("r1")).splitlines()
    assert len(journal) == len(result.units) == 2 * 2 * (2 + 2)
    assert json.loads(journal[0])["model_id"] in {"m0000", "m0001"}
    history = store.read_text(layout.history_key("r1", "m0001")).splitlines()
    assert [json.loads(line)["epoch"] for line in history] == [1, 2]
    record = store.read_json(layout.run_record_key("r1"))
    assert record["status"] == "completed" and record["best_model_id"] == result.best_model_id


def test_only_latest_and_best_checkpoints_are_kept(store):
    result = make_driver(store, {"rate": hp_choice([1.0])}, epochs=3).run()
    model = result.models["m0000"]
    names = store.listdir(layout.model_root("r1", "m0000"))
    kept = sorted(n for n in names if n.startswith("ckpt-"))
    assert kept == [f"ckpt-{model.version:06d}.state"]  # best epoch is the last one here
    assert model.best_version == model.version == 3 * 2


def test_a_failing_model_does_not_stop_the_others(store):
    result = make_driver(store, {"rate": hp_choice([1.0, 2.0]), "fail_at_epoch": hp_choice([None, 2])}).run()
    failed = [m for m in result.models.values() if m.status == "failed"]
    assert len(failed) == 2 and all("diverged" in m.error for m in failed)
    assert all(m.epochs == 1 for m in failed)
    assert all(m.epochs == 3 for m in result.models.values() if m.status == "completed")


def test_every_model_failing_raises_one_error_listing_them(store):
    with pytest.raises(TrainingError, match=r"Every model of the search failed:\n- m0000"):
        make_driver(store, {"rate": hp_choice([1.0, 2.0]), "fail_at_epoch": 1}).run()


def test_unknown_evaluation_metric_names_the_available_ones(store):
    with pytest.raises(TrainingError, match=r"'val_auc' is not among the metrics .*'val_loss'"):
        make_driver(store, {"rate": hp_choice([1.0])}, metric="val_auc", mode="max").run()


def test_same_seed_same_schedule_per_model(store):
    space = {"rate": hp_choice([1.0, 2.0, 3.0, 4.0])}
    orders = []
    for _ in range(2):
        result = make_driver(store, space, workers=3, seed=5).run()
        orders.append({(u.model_id, u.epoch): [] for u in result.units})
        for u in result.units:
            if u.kind == "train":
                orders[-1][(u.model_id, u.epoch)].append(u.partition)
    assert orders[0] == orders[1]


class RungAlgorithm(GridSearchAlgorithm):
    """A synchronous rung at epoch 1: every model pauses there; when all arrived, the best continues."""

    def __init__(self, space, num_epochs):
        super().__init__(space, num_epochs)
        self.arrived: dict[str, float] = {}

    def on_epoch_end(self, model_id, epoch, metrics):
        if epoch > 1:
            return super().on_epoch_end(model_id, epoch, metrics)
        self.arrived[model_id] = metrics["val_loss"]
        if len(self.arrived) < len(self.initial_trials()):
            return Decision(pause=True)
        best = min(self.arrived, key=self.arrived.get)
        others = tuple(m for m in self.arrived if m not in (best, model_id))
        if best == model_id:
            return Decision(stop_paused=others, stop_paused_reason="lost the rung")
        return Decision(stop=True, reason="lost the rung", resume=(best,), stop_paused=others,
                        stop_paused_reason="lost the rung")  # fmt: skip


def test_paused_models_wait_for_the_algorithm_then_resume_or_stop(store):
    def factory(trial):
        return ModelSpec(run_id="r1", model_id=trial.model_id, batch_size=8, params=dict(trial.params))

    algo = RungAlgorithm({"rate": hp_choice([1.0, 4.0, 2.0])}, num_epochs=3)
    settings = RunSettings(run_id="r1", metric="val_loss", mode="min", seed=1)
    result = MopDriver(LocalBackend(2), store, fake_dataset(2), algo, factory, settings, tasks=FAKES).run()
    assert {m: (r.status, r.epochs) for m, r in result.models.items()} == {
        "m0000": ("stopped", 1), "m0001": ("completed", 3), "m0002": ("stopped", 1)
    }  # fmt: skip
    assert result.models["m0000"].reason == "lost the rung"
    # nothing of epoch 2 ran before every model had finished epoch 1
    first_epoch_ends = max(u.finished_at for u in result.units if u.epoch == 1)
    assert all(u.started_at >= first_epoch_ends for u in result.units if u.epoch == 2)


def test_an_algorithm_that_leaves_models_paused_is_an_error(store):
    class Forever(GridSearchAlgorithm):
        def on_epoch_end(self, model_id, epoch, metrics):
            return Decision(pause=True)

    def factory(trial):
        return ModelSpec(run_id="r1", model_id=trial.model_id, batch_size=8, params=dict(trial.params))

    settings = RunSettings(run_id="r1", metric="val_loss", mode="min", seed=1)
    driver = MopDriver(LocalBackend(2), store, fake_dataset(2), Forever({"rate": hp_choice([1.0])}, 2), factory,
                       settings, tasks=FAKES)  # fmt: skip
    with pytest.raises(TrainingError, match=r"left models \['m0000'\] paused"):
        driver.run()


def test_a_model_whose_loss_becomes_nan_fails_and_the_others_finish(store):
    result = make_driver(store, {"rate": hp_choice([1.0, 2.0]), "nan_at_epoch": hp_choice([None, 2])}).run()
    failed = [m for m in result.models.values() if m.status == "failed"]
    assert [m.params["nan_at_epoch"] for m in failed] == [2, 2]
    assert all("The loss became nan" in m.error and "diverged" in m.error for m in failed)
    assert all(m.epochs == 1 for m in failed)  # the partial history is kept
    assert all(m.epochs == 3 for m in result.models.values() if m.status == "completed")
    assert result.best_model_id in {m.model_id for m in result.models.values() if m.status == "completed"}
