"""Two searches in one Spark application, from two threads, do not interfere (issue 4, part 7).

Each search has its own run id, Store folder, control-plane server and secret, and its own Spark job
group; on local[2] two searches of one worker each fit side by side. A search that would need task
slots another search holds is refused at once instead of waiting for them.
"""

from __future__ import annotations

import threading

import pytest

from cerebro_spark.driver import MopDriver, RunSettings
from cerebro_spark.errors import BackendError
from cerebro_spark.search import GridSearchAlgorithm, hp_choice
from cerebro_spark.store import layout
from cerebro_spark.testing.fakes import fake_dataset, fake_tasks
from cerebro_spark.training.model_spec import ModelSpec

pytestmark = pytest.mark.spark


def make_driver(spark, store, run_id, started):
    from cerebro_spark.backend.spark import SparkBackend

    def factory(trial):
        return ModelSpec(run_id=run_id, model_id=trial.model_id, batch_size=8, params=dict(trial.params))

    class Backend(SparkBackend):
        def start(self) -> None:
            super().start()
            started.append((run_id, self.describe(), self._job.group, self._server))

    space = {"rate": hp_choice([1.0, 2.0]), "unit_s": 0.3}
    return MopDriver(
        Backend(spark, num_workers=1), store, fake_dataset(1), GridSearchAlgorithm(space, 2), factory,
        RunSettings(run_id=run_id, metric="val_loss", mode="min", seed=1), tasks=fake_tasks(),
    )  # fmt: skip


def test_two_searches_from_two_threads(spark, store, job_descriptions):
    started, results, errors = [], {}, []

    def run(run_id):
        try:
            results[run_id] = make_driver(spark, store, run_id, started).run()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(f"thread-{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors and set(results) == {"thread-0", "thread-1"}
    for run_id, result in results.items():
        assert all(m.status == "completed" and m.epochs == 2 for m in result.models.values())
        assert store.read_json(layout.run_record_key(run_id))["status"] == "completed"
        assert (
            len(store.read_text(layout.journal_key(run_id)).splitlines()) == 2 * 2 * 2
        )  # only its own units
    assert store.listdir("runs") == ["thread-0", "thread-1"]
    (id0, desc0, group0, server0), (id1, desc1, group1, server1) = started
    assert id0 != id1 and group0 != group1 and server0.address != server1.address
    assert server0._secret != server1._secret
    assert {"cerebro_spark run thread-0: 2 models hopping on 1 workers",
            "cerebro_spark run thread-1: 2 models hopping on 1 workers"} <= job_descriptions()  # fmt: skip
    assert spark.sparkContext.statusTracker().getActiveJobsIds() == []


def test_a_search_that_needs_slots_another_holds_is_refused_at_once(spark):
    from cerebro_spark.backend.spark import SparkBackend

    first = SparkBackend(spark, num_workers=1)
    first.start()
    try:
        with pytest.raises(BackendError, match=r"another search .* holds 1 of the cluster's 2 task slots"):
            SparkBackend(spark, num_workers=2).start()
        with pytest.raises(BackendError, match=r"pass num_workers <= 1"):
            _ = SparkBackend(spark, num_workers=2).num_workers  # before any data is prepared
        second = SparkBackend(spark, num_workers=1)  # fits beside the first
        second.start()
        second.shutdown()
    finally:
        first.shutdown()
    both = SparkBackend(spark, num_workers=2)  # the slots are free again
    both.start()
    both.shutdown()
