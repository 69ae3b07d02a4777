"""ModelBook: each model's state, the legal moves between states, and the scheduler kept in step.

One worker and no validation: one training unit is one epoch, run here by hand (no backend).
"""

from __future__ import annotations

import pytest

from cerebro_spark.driver.book import MOVES, ModelBook
from cerebro_spark.driver.records import ModelStatus
from cerebro_spark.errors import SchedulerError
from cerebro_spark.scheduler import MopScheduler
from cerebro_spark.search import Decision, GridSearchAlgorithm, Trial, hp_choice
from cerebro_spark.training.model_spec import ModelSpec

RUNNING, PAUSED, COMPLETED, STOPPED, FAILED = ModelStatus


class SpyGrid(GridSearchAlgorithm):
    """A grid search that remembers which models it was told failed or left."""

    def __init__(self) -> None:
        super().__init__({"rate": hp_choice([1.0, 2.0])}, num_epochs=2)
        self.told: list[tuple[str, str]] = []

    def on_model_failed(self, model_id, error):
        self.told.append(("failed", model_id))
        return super().on_model_failed(model_id, error)

    def on_model_left(self, model_id, reason):
        self.told.append(("left", model_id))
        return Decision()


@pytest.fixture
def book():
    def factory(trial):
        return ModelSpec(run_id="r1", model_id=trial.model_id, batch_size=8, params=dict(trial.params))

    search = SpyGrid()
    book = ModelBook(MopScheduler(1, seed=0, evaluate=False), search, factory, metric="loss", mode="min")
    for trial in search.initial_trials():
        book.add(trial)
    return book


def train_epoch(book, model_id, loss=1.0):
    """Run the model's one unit of its epoch and close the epoch (best epoch and stale versions too)."""
    unit = next(u for u in book.scheduler.runnable_units(0) if u.model_id == model_id)
    assignment = book.scheduler.assign(0, unit)
    book.take_train(model_id, book.models[model_id].version + 1, {"loss": loss}, 10, 0.5)
    end = book.scheduler.complete(assignment)
    assert end is not None
    record = book.close_epoch(model_id, end.epoch)
    book.update_best(model_id, record)
    return record


def next_epoch_runnable(book, model_id):
    return [u.epoch for u in book.scheduler.runnable_units(0) if u.model_id == model_id]


def test_a_model_starts_running_and_its_record_holds_a_plain_str(book):
    assert book.status("m0000") is RUNNING
    record = book.models["m0000"]
    assert type(record.status) is str and record.status == "running" == RUNNING
    assert book.scheduler.active_models == ("m0000", "m0001")


def test_running_paused_running_completed(book):
    train_epoch(book, "m0000")
    book.pause("m0000")
    assert book.status("m0000") is PAUSED and book.models["m0000"].status == "paused"
    assert book.with_status(PAUSED) == ["m0000"]
    book.resume("m0000")  # the scheduler continues it: its epoch 2 is runnable
    assert book.status("m0000") is RUNNING and next_epoch_runnable(book, "m0000") == [2]
    train_epoch(book, "m0000")
    book.end("m0000", COMPLETED, "completed 2 epochs")
    record = book.models["m0000"]
    assert (record.status, record.reason, record.epochs) == ("completed", "completed 2 epochs", 2)
    assert book.scheduler.active_models == ("m0001",)


def test_the_user_resumes_an_ended_model_from_its_next_epoch(book):
    train_epoch(book, "m0000")
    book.end("m0000", STOPPED, "stopped by the user")
    book.take_over("m0000", 3)
    book.resume("m0000")
    assert (book.models["m0000"].status, book.models["m0000"].reason) == ("running", "")
    assert next_epoch_runnable(book, "m0000") == [2]
    assert book.max_epochs("m0000") == 3 and book.has_left("m0000")
    assert book.decide("m0000", 2, {}) == Decision()
    assert book.decide("m0000", 3, {}).stop


@pytest.mark.parametrize("end", [STOPPED, FAILED])
def test_a_paused_model_may_be_stopped_or_fail(book, end):
    train_epoch(book, "m0000")
    book.pause("m0000")
    book.end("m0000", end, "why")
    assert book.status("m0000") is end and "m0000" not in book.scheduler.active_models


def put_in(book, status):
    """Bring m0000 to ``status`` through legal moves."""
    train_epoch(book, "m0000")
    if status is PAUSED:
        book.pause("m0000")
    elif status in (COMPLETED, STOPPED, FAILED):
        book.end("m0000", status, "why")


@pytest.mark.parametrize(
    ("status", "move", "to"),
    [
        (FAILED, lambda b: b.resume("m0000"), RUNNING),
        (COMPLETED, lambda b: b.pause("m0000"), PAUSED),
        (STOPPED, lambda b: b.end("m0000", FAILED, "late"), FAILED),
        (PAUSED, lambda b: b.pause("m0000"), PAUSED),
        (RUNNING, lambda b: b.resume("m0000"), RUNNING),
    ],
    ids=lambda v: v.value if isinstance(v, ModelStatus) else "",
)
def test_an_illegal_move_raises_naming_the_model_from_and_to(book, status, move, to):
    put_in(book, status)
    active = book.scheduler.active_models
    with pytest.raises(SchedulerError, match=rf"Model 'm0000' cannot go from {status.value} to {to.value}"):
        move(book)
    assert book.status("m0000") is status and book.scheduler.active_models == active  # nothing moved


def test_end_needs_an_end_state_and_next_epoch_a_running_model(book):
    with pytest.raises(SchedulerError, match=r"Cannot end model 'm0000' as paused: not an end state"):
        book.end("m0000", PAUSED, "")
    put_in(book, PAUSED)
    with pytest.raises(SchedulerError, match=r"Model 'm0000' is paused, not running"):
        book.next_epoch("m0000")


def test_the_legal_moves_are_the_documented_ones():
    legal = {(a, b) for a, targets in MOVES.items() for b in targets}
    assert legal == {
        (RUNNING, PAUSED), (RUNNING, COMPLETED), (RUNNING, STOPPED), (RUNNING, FAILED),
        (PAUSED, RUNNING), (PAUSED, STOPPED), (PAUSED, FAILED),
        (COMPLETED, RUNNING), (STOPPED, RUNNING),
    }  # fmt: skip
    assert set(MOVES) == set(ModelStatus) and not MOVES[FAILED]


def test_failing_then_failed_tells_the_algorithm_unless_it_left(book):
    book.mark_failing("m0000")
    assert book.is_failing("m0000") and book.failing() == ["m0000"]
    book.models["m0000"].error = "boom\ntraceback"
    book.fail("m0000", "boom")
    assert book.failing() == [] and book.status("m0000") is FAILED
    book.leave("m0001", "taken over by the user")
    book.leave("m0001", "again")  # told once
    book.fail("m0001", "boom")
    assert book.search.told == [("failed", "m0000"), ("left", "m0001")]


def test_the_algorithm_may_only_move_paused_models_and_not_those_it_left(book):
    with pytest.raises(SchedulerError, match=r"resumed or stopped model 'm0000', which is not paused"):
        book.apply(Decision(resume=("m0000",)))
    put_in(book, PAUSED)
    book.leave("m0000", "taken over by the user")
    book.apply(Decision(stop_paused=("m0000",)))  # no longer the algorithm's: ignored
    assert book.status("m0000") is PAUSED


def test_checkpoints_kept_are_the_latest_and_the_best(book):
    train_epoch(book, "m0000", loss=1.0)  # version 1, best
    assert book.stale_versions("m0000") == [0]
    book.next_epoch("m0000")
    train_epoch(book, "m0000", loss=2.0)  # version 2, worse
    assert book.stale_versions("m0000") == []
    assert (book.models["m0000"].best_version, book.best_model_id()) == (1, "m0000")
    book.take_train("m0000", 3, {"loss": 0.5}, 10, 0.5)  # a unit of an epoch then dropped
    book.drop_epoch("m0000")
    assert book.models["m0000"].version == 2 and book.stale_versions("m0000") == [3]


def test_user_model_ids_count_on(book):
    assert book.user_model_ids(2) == ("u0000", "u0001")
    book.add(Trial("u0000", {"rate": 3.0}), target=1)
    assert book.user_model_ids(1) == ("u0001",) and book.max_epochs("u0000") == 1


def test_after_an_epoch_the_model_moves_as_decided(book, monkeypatch):
    record = train_epoch(book, "m0000")  # the grid: on to epoch 2
    book.after_epoch("m0000", record.epoch, record.metrics)
    assert book.status("m0000") is RUNNING and next_epoch_runnable(book, "m0000") == [2]
    record = train_epoch(book, "m0000")  # its last epoch: completed
    book.after_epoch("m0000", record.epoch, record.metrics)
    assert book.status("m0000") is COMPLETED and book.models["m0000"].reason
    monkeypatch.setattr(book.search, "on_epoch_end", lambda *_: Decision(stop=True, reason="early"))
    record = train_epoch(book, "m0001")  # short of its 2 epochs: stopped
    book.after_epoch("m0001", record.epoch, record.metrics)
    assert (book.status("m0001"), book.models["m0001"].reason) == (STOPPED, "early")
    book.add(Trial("m0002", {"rate": 3.0}))
    monkeypatch.setattr(book.search, "on_epoch_end", lambda *_: Decision(pause=True))
    record = train_epoch(book, "m0002")
    book.after_epoch("m0002", record.epoch, record.metrics)
    assert book.status("m0002") is PAUSED
