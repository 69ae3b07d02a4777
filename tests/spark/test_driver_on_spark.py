"""The driver on real barrier tasks with the fake worker tasks: teardown on success and on Ctrl-C."""

from __future__ import annotations

import threading

import pytest

from cerebro_spark.driver import DriverCallback, MopDriver, RunSettings
from cerebro_spark.search import GridSearchAlgorithm, hp_choice
from cerebro_spark.store import layout
from cerebro_spark.testing.fakes import fake_dataset, fake_tasks
from cerebro_spark.training.model_spec import ModelSpec

pytestmark = pytest.mark.spark


def make_driver(spark, store, run_id, callbacks=()):
    from cerebro_spark.backend.spark import SparkBackend

    def factory(trial):
        return ModelSpec(run_id=run_id, model_id=trial.model_id, batch_size=8, params=dict(trial.params))

    return MopDriver(
        SparkBackend(spark, num_workers=2), store, fake_dataset(2), GridSearchAlgorithm({"rate": hp_choice([1.0, 2.0, 3.0])}, 2),
        factory, RunSettings(run_id=run_id, metric="val_loss", mode="min", seed=3), tasks=fake_tasks(), callbacks=callbacks,
    )  # fmt: skip


def backend_threads():
    return {t for t in threading.enumerate() if t.is_alive() and t is not threading.main_thread()}


def assert_torn_down(spark, before):
    assert spark.sparkContext.statusTracker().getActiveJobsIds() == []
    assert backend_threads() <= before


def test_a_search_on_barrier_tasks_and_its_teardown(spark, store):
    before = backend_threads()
    result = make_driver(spark, store, "ok").run()
    assert all(m.status == "completed" and m.epochs == 2 for m in result.models.values())
    assert {u.worker_id for u in result.units} == {0, 1}
    assert store.read_json(layout.run_record_key("ok"))["status"] == "completed"
    assert_torn_down(spark, before)


class InterruptAfter(DriverCallback):
    def __init__(self, units: int) -> None:
        self.left = units

    def on_unit_end(self, unit) -> None:
        self.left -= 1
        if self.left == 0:
            raise KeyboardInterrupt


def test_ctrl_c_stops_the_workers_and_records_the_run(spark, store):
    before = backend_threads()
    with pytest.raises(KeyboardInterrupt):
        make_driver(spark, store, "interrupted", callbacks=[InterruptAfter(3)]).run()
    record = store.read_json(layout.run_record_key("interrupted"))
    assert record["status"] == "interrupted"
    assert len(store.read_text(layout.journal_key("interrupted")).splitlines()) == 3
    assert_torn_down(spark, before)
    # the cluster is free again: a new search starts its barrier stage at once
    assert make_driver(spark, store, "after").run().best_model_id == "m0002"


def test_the_spark_ui_names_the_run(spark, store, job_descriptions):
    make_driver(spark, store, "named").run()
    assert "cerebro_spark run named: 3 models hopping on 2 workers" in job_descriptions()
