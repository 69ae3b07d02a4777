"""One driver per run: a second driver on a live run id is refused; a dead driver's lease is taken over."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from cerebro_spark.backend.local import LocalBackend
from cerebro_spark.driver import DriverCallback, MopDriver, RunSettings
from cerebro_spark.driver.lease import TTL_S, lease_key
from cerebro_spark.errors import RunInUseError
from cerebro_spark.search import GridSearchAlgorithm, hp_choice
from cerebro_spark.testing.fakes import fake_dataset, fake_tasks
from cerebro_spark.training.model_spec import ModelSpec


def make_driver(store, callbacks=()):
    def factory(trial):
        return ModelSpec(run_id="r1", model_id=trial.model_id, batch_size=8, params=dict(trial.params))

    return MopDriver(
        LocalBackend(2), store, fake_dataset(2), GridSearchAlgorithm({"rate": hp_choice([1.0, 2.0])}, 2),
        factory, RunSettings(run_id="r1", metric="val_loss", mode="min", seed=5), tasks=fake_tasks(),
        callbacks=callbacks,
    )  # fmt: skip


class _SecondDriver(DriverCallback):
    """At the first unit of the run, starts another driver on the same run id (a notebook cell run again)."""

    def __init__(self, store):
        self.store, self.error = store, None

    def on_unit_end(self, unit):
        if self.error is None:
            with pytest.raises(RunInUseError) as info:
                make_driver(self.store).run(resume=True)
            self.error = info.value


def test_a_second_driver_in_the_process_is_refused_while_the_first_trains(store):
    second = _SecondDriver(store)
    result = make_driver(store, [second]).run()
    assert "being trained by another search in this process" in str(second.error)
    assert all(m.status == "completed" for m in result.models.values())
    assert not store.exists(lease_key("r1"))  # released at the end
    assert make_driver(store).run(resume=True).models.keys() == result.models.keys()  # now it may


def test_a_live_lease_of_another_host_is_respected_and_a_stale_one_taken_over(store):
    lease = {"token": "other", "host": "elsewhere", "pid": 1, "renewed_at": time.time()}
    store.write_json(lease_key("r1"), lease)
    with pytest.raises(RunInUseError, match=r"another driver \(pid 1 on host 'elsewhere'.*renewed 0 s ago"):
        make_driver(store).run()
    assert store.read_json(lease_key("r1")) == lease  # untouched

    store.write_json(lease_key("r1"), {**lease, "renewed_at": time.time() - TTL_S - 1})
    assert all(m.status == "completed" for m in make_driver(store).run().models.values())


def test_the_lease_of_a_dead_process_on_this_host_is_taken_over_at_once(store):
    child = subprocess.Popen([sys.executable, "-c", "pass"])  # a process that ends at once: its pid is free
    child.wait()
    store.write_json(lease_key("r1"), {"token": "dead", "host": socket.gethostname(), "pid": child.pid,
                                       "renewed_at": time.time()})  # fmt: skip
    assert all(m.status == "completed" for m in make_driver(store).run().models.values())


def test_a_driver_holding_the_lease_removes_the_leftovers_of_a_crashed_write(store):
    import uuid

    store.write_bytes("runs/r1/m0000/ckpt-000001.state", b"an earlier run's")
    leftover = os.path.join(store.local_path("runs/r1/m0000"), f"ckpt-000001.state.tmp-{uuid.uuid4().hex}")
    with open(leftover, "wb") as f:
        f.write(b"half a checkpoint")
    make_driver(store).run()
    assert not os.path.exists(leftover)
