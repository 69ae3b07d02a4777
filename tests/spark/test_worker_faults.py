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

    space = {
        "rate": hp_choice([1.0, 2.0, 3.0]),
        "fault": hp_choice([fault, None]),
        "fault_marker": str(marker),
    }
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


@pytest.mark.slow
def test_faults_on_local_cluster(tmp_path):
    """Kill a worker's Python process, kill its executor JVM, hang it: on two real executor JVMs (a
    separate process: one SparkContext per process). Runs benchmarks/bench_faults.py, which prints
    the units retried and the extra wall time of each fault."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out, raw = tmp_path / "faults.md", tmp_path / "faults.json"
    proc = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "bench_faults.py"), "--out", str(out), "--json", str(raw),
         "--models", "4", "--epochs", "2", "--unit-s", "0.2"],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    rows = {r["fault"]: r for r in json.loads(raw.read_text())}
    assert set(rows) == {"none", "kill_python", "kill_jvm", "hang"}
    assert all(r["struck"] and r["exact_epochs"] for r in rows.values())
    assert rows["none"]["losses"] == 0
    assert all(
        rows[f]["losses"] == 1 and rows[f]["units_retried"] >= 1 for f in ("kill_python", "kill_jvm", "hang")
    )
    assert "no heartbeat for" in rows["hang"]["reasons"][0]
    print("\n" + out.read_text())


def test_models_that_kill_their_worker_fail_alone_on_spark(spark, store, tmp_path):
    """Two configurations whose units kill their Python worker every time (no marker): each is blamed
    at its second loss and fails alone, with Spark's words as its reason; the others train to the end."""
    from cerebro_spark.backend.spark import SparkBackend

    def factory(trial):
        return ModelSpec(run_id="culprits", model_id=trial.model_id, batch_size=8, params=dict(trial.params))

    space = {"rate": hp_choice([1.0, 2.0]), "fault": hp_choice(["kill_python", None])}
    driver = MopDriver(
        SparkBackend(spark, num_workers=2, heartbeat_s=0.2, worker_timeout_s=5.0), store, fake_dataset(2),
        GridSearchAlgorithm(space, 2), factory,
        RunSettings(run_id="culprits", metric="val_loss", mode="min", seed=3), tasks=fake_tasks(),
    )  # fmt: skip
    result = driver.run()
    failed = {m for m, r in result.models.items() if r.status == "failed"}
    assert failed == {m for m, r in result.models.items() if r.params["fault"]}
    assert all(result.models[m].reason.startswith("lost its worker 2 times") for m in failed)
    assert len(driver.worker_losses) == 4 and {loss["suspect"] for loss in driver.worker_losses} == failed
    assert all(r.status == "completed" and r.epochs == 2 for m, r in result.models.items() if m not in failed)
    assert spark.sparkContext.statusTracker().getActiveJobsIds() == []


def test_a_unit_past_its_deadline_is_ended_and_its_model_fails_alone(spark, store):
    """A unit that never ends while its worker still heartbeats (a hang inside the task): past the
    unit deadline its workers are relaunched; at its second time the model fails alone."""
    from cerebro_spark.backend.spark import SparkBackend

    def factory(trial):
        return ModelSpec(run_id="hangs", model_id=trial.model_id, batch_size=8, params=dict(trial.params))

    space = {"rate": hp_choice([1.0, 2.0]), "unit_s": hp_choice([600.0, 0.0])}
    driver = MopDriver(
        SparkBackend(spark, num_workers=2, heartbeat_s=0.2, worker_timeout_s=30.0), store, fake_dataset(2),
        GridSearchAlgorithm(space, 2), factory,
        RunSettings(run_id="hangs", metric="val_loss", mode="min", seed=3, unit_timeout_s=3.0), tasks=fake_tasks(),
    )  # fmt: skip
    started = time.monotonic()
    result = driver.run()
    failed = {m for m, r in result.models.items() if r.status == "failed"}
    assert failed == {m for m, r in result.models.items() if r.params["unit_s"]}
    assert all("past the deadline of 3 s" in result.models[m].reason for m in failed)
    assert all("past the deadline" in loss["reason"] for loss in driver.worker_losses)
    assert all(r.status == "completed" and r.epochs == 2 for m, r in result.models.items() if m not in failed)
    assert time.monotonic() - started < 300  # the 600 s units were ended, not waited for
    assert spark.sparkContext.statusTracker().getActiveJobsIds() == []
