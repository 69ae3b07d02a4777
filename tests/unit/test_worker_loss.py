"""The driver survives lost workers (LocalBackend's injected deaths): units put back, epochs exact."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from cerebro_spark.backend.local import LocalBackend
from cerebro_spark.driver import MopDriver, RunSettings
from cerebro_spark.errors import BackendError, InvalidParamError
from cerebro_spark.search import GridSearchAlgorithm, hp_choice
from cerebro_spark.store import layout
from cerebro_spark.testing.fakes import fake_dataset, fake_tasks
from cerebro_spark.training.model_spec import ModelSpec


def make_driver(store, space, *, workers=2, epochs=2, max_restarts=3):
    def factory(trial):
        return ModelSpec(run_id="r1", model_id=trial.model_id, batch_size=8, params=dict(trial.params))

    return MopDriver(
        LocalBackend(workers, max_restarts=max_restarts), store, fake_dataset(workers),
        GridSearchAlgorithm(space, num_epochs=epochs), factory,
        RunSettings(run_id="r1", metric="val_loss", mode="min", seed=5), tasks=fake_tasks(),
    )  # fmt: skip


def assert_exact_epochs(store, result, epochs, partitions):
    journal = [json.loads(line) for line in store.read_text(layout.journal_key("r1")).splitlines()]
    counts = Counter((u["model_id"], u["epoch"], u["kind"], u["partition"]) for u in journal)
    expected = {
        (m, e, k, p)
        for m in result.models
        for e in range(1, epochs + 1)
        for k in ("train", "eval")
        for p in range(partitions)
    }
    assert set(counts) == expected and set(counts.values()) == {1}
    for model in result.models.values():
        assert model.status == "completed" and [h.epoch for h in model.history] == list(range(1, epochs + 1))
        assert model.version == epochs * partitions  # one checkpoint version per training unit


def test_a_worker_dying_mid_unit_is_relaunched_and_its_unit_retried(store, tmp_path):
    marker = tmp_path / "died"
    space = {"rate": hp_choice([1.0, 2.0, 3.0]), "fault": hp_choice(["exit", None]),
             "fault_marker": str(marker), "fault_epoch": 2, "fault_partition": 1}  # fmt: skip
    driver = make_driver(store, space, epochs=3)
    result = driver.run()
    assert marker.exists()
    assert_exact_epochs(store, result, epochs=3, partitions=2)
    (loss,) = driver.worker_losses
    assert loss["worker_id"] == 1 and "SystemExit" in loss["reason"]
    assert any("epoch 2 partition 1" in u and u.startswith("train") for u in loss["units_put_back"])
    record = store.read_json(layout.run_record_key("r1"))
    assert record["status"] == "completed" and record["worker_losses"][0]["worker_id"] == 1


def test_a_worker_that_keeps_dying_ends_the_search_with_its_last_words(store):
    space = {"rate": hp_choice([1.0]), "fault": "exit", "fault_partition": 0}  # no marker: every time
    driver = make_driver(store, space, max_restarts=2)
    with pytest.raises(BackendError, match=r"(?s)Worker 0 was lost .*max_restarts=2.*Last words.*SystemExit"):
        driver.run()
    assert len(driver.worker_losses) == 3
    assert store.read_json(layout.run_record_key("r1"))["status"] == "failed"


def test_no_restart_allowed_fails_at_the_first_loss(store, tmp_path):
    space = {"rate": hp_choice([1.0]), "fault": "exit", "fault_marker": str(tmp_path / "m")}
    with pytest.raises(BackendError, match=r"max_restarts=0"):
        make_driver(store, space, max_restarts=0).run()


def test_a_failing_model_caught_by_a_worker_loss_still_fails_alone(store, tmp_path):
    space = {"rate": hp_choice([1.0, 2.0]), "fail_at_epoch": hp_choice([None, 2]),
             "fault": "exit", "fault_marker": str(tmp_path / "m"), "fault_epoch": 2}  # fmt: skip
    result = make_driver(store, space, epochs=3).run()
    statuses = sorted(m.status for m in result.models.values())
    assert statuses == ["completed", "completed", "failed", "failed"]


def test_max_restarts_is_checked():
    with pytest.raises(
        InvalidParamError, match=r"max_restarts must be an int >= 0\. Received: max_restarts=-1"
    ):
        LocalBackend(2, max_restarts=-1)


def test_spark_backend_fault_params_are_checked():
    from cerebro_spark.backend.spark import SparkBackend

    with pytest.raises(
        InvalidParamError, match=r"worker_timeout_s must be None or .* larger than heartbeat_s=5\.0"
    ):
        SparkBackend(heartbeat_s=5.0, worker_timeout_s=2.0)
    with pytest.raises(
        InvalidParamError,
        match=r"SparkBackend's max_restarts must be an int >= 0\. Received: max_restarts=1\.5",
    ):
        SparkBackend(max_restarts=1.5)
    assert SparkBackend(worker_timeout_s=None, max_restarts=0).max_restarts == 0
