"""A search survives a worker killed or hung on a real local Spark (shared local[2] session).

The executor-JVM kill needs real executor processes: it runs on local-cluster, in
``test_faults_on_local_cluster`` (slow). Each test prints the units retried and the wall time.
"""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from cerebro_spark.driver import MopDriver, RunSettings
from cerebro_spark.search import GridSearchAlgorithm, hp_choice
from cerebro_spark.store import layout
from cerebro_spark.testing.fakes import fake_dataset, fake_tasks
from cerebro_spark.training.model_spec import ModelSpec

pytestmark = pytest.mark.spark


def run_search(spark, store, run_id, fault, marker, *, epochs=2, **backend_args):
    from cerebro_spark.backend.spark import SparkBackend

    def factory(trial):
        return ModelSpec(run_id=run_id, model_id=trial.model_id, batch_size=8, params=dict(trial.params))

    space = {"rate": hp_choice([1.0, 2.0, 3.0]), "fault": hp_choice([fault, None]), "fault_marker": str(marker)}
    driver = MopDriver(
        SparkBackend(spark, num_workers=2, heartbeat_s=0.2, **backend_args), store, fake_dataset(2),
        GridSearchAlgorithm(space, epochs), factory,
        RunSettings(run_id=run_id, metric="val_loss", mode="min", seed=3), tasks=fake_tasks(),
    )  # fmt: skip
    started = time.monotonic()
    result = driver.run()
    return driver, result, time.monotonic() - started


def assert_exact_epochs(store, run_id, result, epochs):
    journal = [json.loads(line) for line in store.read_text(layout.journal_key(run_id)).splitlines()]
    counts = Counter((u["model_id"], u["epoch"], u["kind"], u["partition"]) for u in journal)
    assert len(counts) == len(result.models) * epochs * 2 * 2 and set(counts.values()) == {1}
    assert all(m.status == "completed" and m.epochs == epochs for m in result.models.values())


@pytest.mark.parametrize(
    ("fault", "reason"),
    [("kill_python", "connection closed"), ("hang", "no heartbeat for")],
)
def test_a_search_survives_a_lost_worker(spark, store, tmp_path, fault, reason):
    marker = tmp_path / "fault"
    driver, result, seconds = run_search(spark, store, fault, fault, marker, worker_timeout_s=3.0)
    assert marker.exists()  # the fault did strike
    assert_exact_epochs(store, fault, result, epochs=2)
    (loss,) = driver.worker_losses
    assert loss["worker_id"] == 0 and reason in loss["reason"]
    faulty = {m.model_id for m in result.models.values() if m.params["fault"] == fault}
    assert any(u.startswith(f"train {m} epoch 1 partition 0") for m in faulty for u in loss["units_put_back"])
    assert spark.sparkContext.statusTracker().getActiveJobsIds() == []
    print(f"\n{fault}: {len(loss['units_put_back'])} units retried, search {seconds:.1f} s")
