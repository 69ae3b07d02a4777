"""Resume: a run interrupted after any number of units goes on where it stopped (LocalBackend, fakes).

The fake tasks make a model's loss a function of its checkpoint version, so equal histories mean
that every model trained exactly the units of an uninterrupted run, in the same order.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from cerebro_spark.backend.local import LocalBackend
from cerebro_spark.driver import DriverCallback, MopDriver, RunSettings
from cerebro_spark.errors import InvalidParamError
from cerebro_spark.search import (
    ASHAAlgorithm,
    GridSearchAlgorithm,
    HyperbandAlgorithm,
    SuccessiveHalvingAlgorithm,
    TPEAlgorithm,
    hp_choice,
    hp_uniform,
)
from cerebro_spark.store import layout
from cerebro_spark.testing.fakes import fake_dataset, fake_tasks
from cerebro_spark.training.model_spec import ModelSpec

RATES = [1.0, 9.0, 2.0, 8.0, 3.0, 7.0, 4.0, 6.0, 5.0]


class InterruptAfter(DriverCallback):
    """Ctrl-C after ``units`` completed units (the last one is journaled, its epoch not closed)."""

    def __init__(self, units: int) -> None:
        self.left = units

    def on_unit_end(self, unit) -> None:
        self.left -= 1
        if self.left == 0:
            raise KeyboardInterrupt


def make_driver(store, algo, *, run_id="r1", workers=2, seed=1, callbacks=()):
    def factory(trial):
        return ModelSpec(run_id=run_id, model_id=trial.model_id, batch_size=8, params=dict(trial.params))

    settings = RunSettings(run_id=run_id, metric="val_loss", mode="min", seed=seed)
    return MopDriver(
        LocalBackend(workers), store, fake_dataset(workers), algo, factory, settings, tasks=fake_tasks(),
        callbacks=callbacks,
    )  # fmt: skip


def histories(result):
    return {
        m.model_id: (m.status, m.reason, [(e.epoch, e.version, e.metrics) for e in m.history])
        for m in result.models.values()
    }


def journal(store, run_id="r1"):
    return [json.loads(line) for line in store.read_text(layout.journal_key(run_id)).splitlines()]


def assert_each_unit_once(store, run_id="r1"):
    counts = Counter((u["model_id"], u["epoch"], u["partition"], u["kind"]) for u in journal(store, run_id))
    assert counts and set(counts.values()) == {1}, [k for k, n in counts.items() if n > 1]


def interrupted_then_resumed(store, make_algo, stops, **kwargs):
    """Interrupt after each count of units in ``stops`` (counted from each restart), then finish."""
    for units in stops:
        with pytest.raises(KeyboardInterrupt):
            make_driver(store, make_algo(), callbacks=[InterruptAfter(units)], **kwargs).run(resume=True)
        assert store.read_json(layout.run_record_key("r1"))["status"] == "interrupted"
    return make_driver(store, make_algo(), **kwargs).run(resume=True)


def grid():
    return GridSearchAlgorithm({"rate": hp_choice([0.5, 1.0, 2.0, 4.0])}, num_epochs=3)


@pytest.mark.parametrize("stops", [[1], [8], [9], [17], [5, 11, 3]], ids=str)
def test_grid_resumed_after_any_unit_equals_an_uninterrupted_run(tmp_path, stops):
    from cerebro_spark.store.base import Store

    reference = make_driver(Store.create(str(tmp_path / "ref")), grid()).run()
    store = Store.create(str(tmp_path / "resumed"))
    result = interrupted_then_resumed(store, grid, stops)
    assert histories(result) == histories(reference)
    assert result.best_model_id == reference.best_model_id
    assert_each_unit_once(store)
    assert len(result.units) == len(reference.units) == 4 * 3 * 2 * 2
    assert store.read_json(layout.run_record_key("r1"))["status"] == "completed"
    # the stored histories have each epoch once
    for model_id in result.models:
        lines = store.read_text(layout.history_key("r1", model_id)).splitlines()
        assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]


def test_resuming_a_finished_run_trains_nothing(store):
    first = make_driver(store, grid()).run(resume=True)
    again = make_driver(store, grid()).run(resume=True)
    assert histories(again) == histories(first)
    assert len(journal(store)) == len(first.units)


def test_a_torn_journal_line_is_dropped_and_its_unit_trained_again(store):
    with pytest.raises(KeyboardInterrupt):
        make_driver(store, grid(), callbacks=[InterruptAfter(10)]).run(resume=True)
    store.append_text(layout.journal_key("r1"), '{"model_id": "m00')  # a crash in mid-append
    result = make_driver(store, grid()).run(resume=True)
    assert all(m.status == "completed" and m.epochs == 3 for m in result.models.values())
    assert_each_unit_once(store)


def test_an_epoch_missing_from_the_history_is_written_on_resume(store):
    """A crash between the journal append and the history append: the journal wins."""
    with pytest.raises(KeyboardInterrupt):
        make_driver(store, grid(), callbacks=[InterruptAfter(20)]).run(resume=True)
    model_id = next(
        m for m in ("m0000", "m0001", "m0002", "m0003") if store.exists(layout.history_key("r1", m))
    )
    key = layout.history_key("r1", model_id)
    lines = store.read_text(key).splitlines()
    store.write_text(key, "".join(f"{line}\n" for line in lines[:-1]))
    result = make_driver(store, grid()).run(resume=True)
    stored = [json.loads(line)["epoch"] for line in store.read_text(key).splitlines()]
    assert stored == [1, 2, 3] and result.models[model_id].epochs == 3


def test_another_search_under_the_same_run_id_is_refused_with_what_differs(store):
    with pytest.raises(KeyboardInterrupt):
        make_driver(store, grid(), callbacks=[InterruptAfter(5)]).run(resume=True)
    before = store.read_text(layout.journal_key("r1"))
    other = GridSearchAlgorithm({"rate": hp_choice([0.5, 1.0])}, num_epochs=3)
    with pytest.raises(InvalidParamError, match=r"run_id 'r1'.*other settings(.|\n)*search space"):
        make_driver(store, other).run(resume=True)
    with pytest.raises(InvalidParamError, match=r"seed: the run has 1, this search 2"):
        make_driver(store, grid(), seed=2).run(resume=True)
    assert store.read_text(layout.journal_key("r1")) == before  # nothing written
    assert store.read_json(layout.run_record_key("r1"))["status"] == "interrupted"


def test_a_failed_model_stays_failed_after_resume(tmp_path):
    from cerebro_spark.store.base import Store

    def algo():
        return GridSearchAlgorithm({"rate": hp_choice([1.0, 2.0]), "fail_at_epoch": hp_choice([None, 2])}, 3)

    reference = make_driver(Store.create(str(tmp_path / "ref")), algo()).run()
    store = Store.create(str(tmp_path / "resumed"))
    result = interrupted_then_resumed(store, algo, [14])
    assert histories(result) == histories(reference)
    assert [m for m, r in result.models.items() if r.status == "failed"] == ["m0001", "m0003"]
    events = [json.loads(line) for line in store.read_text("runs/r1/events.jsonl").splitlines()]
    assert {e["model_id"] for e in events if e["event"] == "failed"} == {"m0001", "m0003"}


def sha():
    return SuccessiveHalvingAlgorithm({"rate": hp_choice(RATES)}, num_models=9, min_epochs=1, max_epochs=9,
                                      seed=0, metric="val_loss", mode="min")  # fmt: skip


def hyperband():
    return HyperbandAlgorithm(
        {"rate": hp_uniform(0.5, 10.0)}, max_epochs=9, seed=3, metric="val_loss", mode="min"
    )


@pytest.mark.parametrize("make_algo", [sha, hyperband], ids=["halving", "hyperband"])
def test_synchronous_rungs_resume_to_the_same_decisions(tmp_path, make_algo):
    """Rungs decide when complete, so their decisions do not depend on the order of epoch ends."""
    from cerebro_spark.store.base import Store

    reference = make_driver(Store.create(str(tmp_path / "ref")), make_algo(), workers=3).run()
    store = Store.create(str(tmp_path / "resumed"))
    result = interrupted_then_resumed(store, make_algo, [40, 25], workers=3)
    assert histories(result) == histories(reference)
    assert_each_unit_once(store)


def asha():
    return ASHAAlgorithm({"rate": hp_choice(RATES)}, num_models=9, max_epochs=9, seed=0, metric="val_loss",
                         mode="min", max_concurrent=4)  # fmt: skip


def tpe():
    return TPEAlgorithm({"rate": hp_uniform(0.5, 10.0)}, num_models=7, num_epochs=2, seed=0, metric="val_loss",
                        mode="min", max_concurrent=4)  # fmt: skip


@pytest.mark.parametrize("make_algo", [asha, tpe], ids=["asha", "tpe"])
def test_asynchronous_algorithms_replay_their_decisions_and_finish(store, make_algo):
    """ASHA and TPE decide in the order epochs end (timing, on a cluster): the replay gives them the
    journal's order, so every model the interrupted run started keeps its configuration."""
    with pytest.raises(KeyboardInterrupt):
        make_driver(store, make_algo(), callbacks=[InterruptAfter(30)]).run(resume=True)
    before = store.read_json(layout.run_record_key("r1"))["models"]
    result = make_driver(store, make_algo()).run(resume=True)
    assert len(result.models) == (9 if make_algo is asha else 7)
    assert all(result.models[m].params == {k: v for k, v in r["params"].items()} for m, r in before.items())
    assert all(m.status in ("completed", "stopped") for m in result.models.values())
    assert_each_unit_once(store)


def test_epoch_means_do_not_depend_on_the_order_units_complete():
    import itertools

    from cerebro_spark.driver.records import weighted_means

    parts = [({"acc": 0.74}, 10), ({"acc": 0.1}, 3), ({"acc": 0.33}, 7), ({"acc": 0.9}, 11)]
    means = {weighted_means(order)["acc"] for order in itertools.permutations(parts)}
    assert len(means) == 1
