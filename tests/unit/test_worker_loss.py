"""The driver survives lost workers (LocalBackend's injected deaths): units put back, epochs exact."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from cerebro_spark.backend.local import LocalBackend
from cerebro_spark.driver import MopDriver, RunSettings
from cerebro_spark.driver.run_record import events_key
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


def test_a_model_that_keeps_killing_its_worker_fails_alone_with_the_loss_as_reason(store, tmp_path):
    """Three of six configurations kill their worker every time: each is blamed at its second loss and
    fails alone; the three others train every epoch exactly once. Six losses, and max_restarts=3 is
    enough: the culprits' losses are not charged."""
    space = {"rate": hp_choice([1.0, 2.0, 3.0]), "fault": hp_choice(["exit", None]), "fault_partition": 0}
    driver = make_driver(store, space, epochs=2, max_restarts=3)
    result = driver.run()
    failed = {m for m, r in result.models.items() if r.status == "failed"}
    assert failed == {m for m, r in result.models.items() if r.params["fault"] == "exit"} and len(failed) == 3
    for model_id in failed:
        record = result.models[model_id]
        assert record.reason.startswith("lost its worker 2 times: ") and "SystemExit" in record.error
    suspects = [loss["suspect"] for loss in driver.worker_losses]
    assert sorted(suspects) == sorted([*failed, *failed])
    healthy = {m: r for m, r in result.models.items() if m not in failed}
    assert all(r.status == "completed" and [h.epoch for h in r.history] == [1, 2] for r in healthy.values())
    events = [json.loads(line) for line in store.read_text(events_key("r1")).splitlines()]
    assert sorted(e["model_id"] for e in events if e["event"] == "failed") == sorted(failed)


def test_losses_no_model_explains_still_end_the_search_with_the_last_words(store, tmp_path):
    """Each of two models kills its worker once (a marker each): two suspects of one loss each, so
    both losses count against max_restarts=1."""
    space = {"rate": hp_choice([1.0, 2.0]), "fault": "exit", "fault_partition": 0,
             "fault_marker": hp_choice([str(tmp_path / "a"), str(tmp_path / "b")])}  # fmt: skip
    driver = make_driver(store, space, max_restarts=1)
    with pytest.raises(BackendError, match=r"(?s)Worker 0 was lost .*max_restarts=1.*Last words.*SystemExit"):
        driver.run()
    assert len(driver.worker_losses) == 2 and len({loss["suspect"] for loss in driver.worker_losses}) == 2
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


class _RefusingBackend(LocalBackend):
    """LocalBackend whose requests for model m0001 cannot cross to a worker (as an unpicklable or
    oversized request cannot on SparkBackend's channel)."""

    def submit(self, worker_id, request):
        model = request.kwargs.get("model")
        if model is not None and model.model_id == "m0001":
            raise InvalidParamError("A TaskRequest cannot cross the control plane: it is too large")
        super().submit(worker_id, request)


def test_a_request_that_cannot_reach_a_worker_fails_its_model_alone(store):
    def factory(trial):
        return ModelSpec(run_id="r1", model_id=trial.model_id, batch_size=8, params=dict(trial.params))

    driver = MopDriver(
        _RefusingBackend(2), store, fake_dataset(2), GridSearchAlgorithm({"rate": hp_choice([1.0, 2.0, 3.0])}, 2),
        factory, RunSettings(run_id="r1", metric="val_loss", mode="min", seed=5), tasks=fake_tasks(),
    )  # fmt: skip
    result = driver.run()
    assert {m: r.status for m, r in result.models.items()} == {"m0000": "completed", "m0001": "failed",
                                                                "m0002": "completed"}  # fmt: skip
    assert "cannot cross the control plane" in result.models["m0001"].reason
    assert driver.worker_losses == []


def test_the_unit_deadline_follows_the_longest_unit_unless_set(monkeypatch):
    from cerebro_spark.driver.settings import MIN_UNIT_TIMEOUT_S, unit_deadline

    auto = RunSettings(run_id="r", metric="loss", mode="min", seed=1)
    assert auto.unit_timeout_s is None
    assert unit_deadline(auto, 5.0) == MIN_UNIT_TIMEOUT_S and unit_deadline(auto, 300.0) == 3000.0
    assert (
        unit_deadline(RunSettings(run_id="r", metric="loss", mode="min", seed=1, unit_timeout_s=7.0), 300.0)
        == 7.0
    )
    monkeypatch.setenv("CEREBRO_UNIT_TIMEOUT_S", "45")
    assert unit_deadline(RunSettings(run_id="r", metric="loss", mode="min", seed=1), 300.0) == 45.0
    monkeypatch.setenv("CEREBRO_UNIT_TIMEOUT_S", "soon")
    with pytest.raises(
        InvalidParamError, match=r"CEREBRO_UNIT_TIMEOUT_S must be a number of seconds\. Received: 'soon'"
    ):
        RunSettings(run_id="r", metric="loss", mode="min", seed=1)
