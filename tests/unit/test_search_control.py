"""Live control of a search (human in the loop) on LocalBackend with the fake tasks.

Commands are submitted from a DriverCallback (the driver's thread, at a chosen unit) or from another
thread that the callback waits for, so every test's outcome is decided by events, not by timing.
"""

from __future__ import annotations

import json
import threading

import pytest

from cerebro_spark.backend.local import LocalBackend
from cerebro_spark.driver import DriverCallback, MopDriver, RunSettings
from cerebro_spark.driver.control import AddModels, Interrupt, ResumeModel, SearchControl, StopModel
from cerebro_spark.errors import InvalidParamError
from cerebro_spark.scheduler import MopScheduler
from cerebro_spark.search import ASHAAlgorithm, GridSearchAlgorithm, SuccessiveHalvingAlgorithm, hp_choice
from cerebro_spark.store import layout
from cerebro_spark.testing.fakes import fake_dataset, fake_tasks
from cerebro_spark.training.model_spec import ModelSpec

RATES = [1.0, 9.0, 2.0, 8.0, 3.0, 7.0, 4.0, 6.0, 5.0]


class When(DriverCallback):
    """Call ``action()`` once, at the first unit (or epoch end) for which ``condition`` holds."""

    def __init__(self, condition, action, on="unit") -> None:
        self.condition, self.action, self.on, self.futures = condition, action, on, []

    def _maybe(self, record) -> None:
        if self.condition is not None and self.condition(record):
            self.condition = None
            self.futures.extend(self.action())

    def on_unit_end(self, unit) -> None:
        if self.on == "unit":
            self._maybe(unit)

    def on_epoch_end(self, record) -> None:
        if self.on == "epoch":
            self._maybe(record)


def make_driver(store, algo, control, callbacks=(), workers=2):
    def factory(trial):
        return ModelSpec(run_id="r1", model_id=trial.model_id, batch_size=8, params=dict(trial.params))

    settings = RunSettings(run_id="r1", metric="val_loss", mode="min", seed=1)
    return MopDriver(
        LocalBackend(workers), store, fake_dataset(workers), algo, factory, settings, tasks=fake_tasks(),
        callbacks=callbacks, control=control,
    )  # fmt: skip


def grid(epochs=3):
    return GridSearchAlgorithm({"rate": hp_choice([1.0, 2.0, 4.0])}, num_epochs=epochs)


def events(store):
    return [json.loads(line) for line in store.read_text("runs/r1/events.jsonl").splitlines()]


def test_stop_mid_epoch_drops_the_partial_epoch_and_frees_the_model(store):
    control = SearchControl()
    # m0001 trained once in epoch 2: the stop takes effect at this unit's completion
    stop = When(lambda u: (u.model_id, u.epoch, u.kind) == ("m0001", 2, "train"),
                lambda: [control.submit(StopModel("m0001"))])  # fmt: skip
    result = make_driver(store, grid(), control, [stop]).run()
    model = result.models["m0001"]
    assert (model.status, model.reason, model.epochs) == ("stopped", "stopped by the user", 1)
    assert model.version == model.history[-1].version == 2  # back to its last epoch's state
    assert stop.futures[0].result() is None
    assert all(result.models[m].status == "completed" for m in ("m0000", "m0002"))
    assert not any(u.model_id == "m0001" and u.epoch > 2 for u in result.units)
    kept = [n for n in store.listdir(layout.model_root("r1", "m0001")) if n.startswith("ckpt-")]
    assert kept == ["ckpt-000002.state"]  # the partial epoch's checkpoint is gone
    [event] = events(store)
    assert event["command"] == {"kind": "stop", "model_id": "m0001", "reason": "stopped by the user"}
    assert control.state == "finished" and control.snapshot().models["m0001"].status == "stopped"


def test_a_stop_is_journaled_before_its_checkpoints_are_deleted(store):
    """A driver that dies between the two leaves spare files, never a journal that needs deleted ones."""
    control = SearchControl()
    stop = When(lambda u: (u.model_id, u.epoch, u.kind) == ("m0001", 2, "train"),
                lambda: [control.submit(StopModel("m0001"))])  # fmt: skip
    driver = make_driver(store, grid(), control, [stop])
    order = []
    for name in ("event", "delete_checkpoints"):
        real = getattr(driver.recorder, name)
        setattr(driver.recorder, name, lambda *a, _n=name, _r=real: (order.append((_n, *a)), _r(*a))[1])
    driver.run()
    stop_event = next(i for i, call in enumerate(order) if call[0] == "event")
    partial = [i for i, call in enumerate(order) if call[:3] == ("delete_checkpoints", "m0001", [3])]
    assert partial and partial[0] > stop_event  # the partial epoch's checkpoint goes after the stop's line


def test_a_stopped_model_resumed_trains_to_its_new_target(store):
    control = SearchControl()
    stop = When(lambda r: (r.model_id, r.epoch) == ("m0000", 1), lambda: [control.submit(StopModel("m0000"))],
                on="epoch")  # fmt: skip
    resume = When(lambda r: (r.model_id, r.epoch) == ("m0002", 2),
                  lambda: [control.submit(ResumeModel("m0000", epochs=5))], on="epoch")  # fmt: skip
    result = make_driver(store, grid(), control, [stop, resume]).run()
    model = result.models["m0000"]
    assert (model.status, model.reason, model.epochs) == ("completed", "completed 5 epochs", 5)
    assert [e.epoch for e in model.history] == [1, 2, 3, 4, 5]
    assert [e["command"]["kind"] for e in events(store)] == ["stop", "resume"]


def test_added_models_train_next_to_the_others_and_the_journal_shows_them(store):
    control = SearchControl()
    add = When(lambda u: u.model_id == "m0000" and u.epoch == 1 and u.kind == "eval",
               lambda: [control.submit(AddModels(({"rate": 16.0}, {"rate": 0.5}), epochs=2))])  # fmt: skip
    result = make_driver(store, grid(), control, [add]).run()
    assert add.futures[0].result() == ["u0000", "u0001"]
    for model_id in ("u0000", "u0001"):
        assert (result.models[model_id].status, result.models[model_id].epochs) == ("completed", 2)
    assert result.best_model_id == "u0000"  # the fastest rate
    journal = [json.loads(line) for line in store.read_text(layout.journal_key("r1")).splitlines()]
    assert sum(u["model_id"] == "u0000" for u in journal) == 2 * 2 * 2


def test_bad_commands_fail_their_future_and_the_search_goes_on(store):
    control = SearchControl()
    commands = When(lambda u: u.model_id == "m0000", lambda: [
        control.submit(StopModel("nope")), control.submit(ResumeModel("m0001")),
        control.submit(ResumeModel("m0001", epochs=0)), control.submit(AddModels(())),
    ])  # fmt: skip
    result = make_driver(store, grid(), control, [commands]).run()
    messages = [str(f.exception()) for f in commands.futures]
    assert "no such model in run 'r1'" in messages[0]
    assert "only a stopped, completed or paused model" in messages[1]
    assert "epochs must be an int >= 1" in messages[2]
    assert "at least one configuration" in messages[3]
    assert all(m.status == "completed" for m in result.models.values())
    with pytest.raises(InvalidParamError, match="The search has ended"):
        control.submit(StopModel("m0000")).result()


def test_interrupt_ends_the_run_as_ctrl_c_and_a_resume_replays_the_commands(store):
    control = SearchControl()
    commands = When(lambda u: u.model_id == "m0002" and u.kind == "eval", lambda: [
        control.submit(StopModel("m0000")), control.submit(AddModels(({"rate": 3.0},))),
    ])  # fmt: skip
    # an interrupt overtakes a stop still waiting for the model's unit in flight: send it once both applied
    interrupt = When(lambda u: len(commands.futures) == 2 and all(f.done() for f in commands.futures),
                     lambda: [control.submit(Interrupt())])  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        make_driver(store, grid(), control, [commands, interrupt]).run(resume=True)
    assert store.read_json(layout.run_record_key("r1"))["status"] == "interrupted"
    assert control.state == "interrupted"
    result = make_driver(store, grid(), SearchControl()).run(resume=True)
    assert result.models["m0000"].status == "stopped" and result.models["u0000"].epochs == 3
    journal = [json.loads(line) for line in store.read_text(layout.journal_key("r1")).splitlines()]
    keys = [(u["model_id"], u["epoch"], u["partition"], u["kind"]) for u in journal]
    assert len(keys) == len(set(keys))


def asha():
    return ASHAAlgorithm({"rate": hp_choice(RATES)}, num_models=9, max_epochs=9, seed=0, metric="val_loss",
                         mode="min", max_concurrent=4)  # fmt: skip


def test_asha_bookkeeping_survives_stopping_running_and_waiting_models(store):
    control = SearchControl()
    algo = asha()

    def stop_two():
        waiting = next(iter(algo._waiting))  # a model paused at a rung
        running = next(m for m in sorted(algo._running) if m != waiting)
        return [control.submit(StopModel(waiting)), control.submit(StopModel(running))]

    stop = When(lambda r: algo._waiting and len(algo._running) > 1, stop_two, on="epoch")
    result = make_driver(store, algo, control, [stop]).run()
    assert all(f.result() is None for f in stop.futures)
    assert len(result.models) == 9  # the freed places went to new configurations
    assert {m.status for m in result.models.values()} <= {"completed", "stopped"}
    assert sum(m.reason == "stopped by the user" for m in result.models.values()) == 2


def test_halving_takes_a_paused_model_out_of_its_rung(store):
    control = SearchControl()
    algo = SuccessiveHalvingAlgorithm({"rate": hp_choice(RATES)}, num_models=9, min_epochs=1, max_epochs=9,
                                      seed=0, metric="val_loss", mode="min")  # fmt: skip
    taken = {}

    def take_over():
        # the first model waiting at a rung: the user takes it over and trains it one epoch more
        model = next(m for m in driver.models.values() if m.status == "paused")
        taken.update(model_id=model.model_id, epochs=model.epochs + 1)
        return [control.submit(ResumeModel(model.model_id, epochs=model.epochs + 1))]

    take = When(lambda r: any(m.status == "paused" for m in driver.models.values()), take_over, on="epoch")
    driver = make_driver(store, algo, control, [take])
    result = driver.run()
    assert take.futures[0].result() is None
    model = result.models[taken["model_id"]]
    assert (model.status, model.epochs) == ("completed", taken["epochs"])
    finals = [m for m in result.models.values() if m.epochs == 9]
    assert len(finals) == 1 and finals[0].model_id != model.model_id  # the rungs ranked the others
    assert {m.status for m in result.models.values()} <= {"completed", "stopped"}


def test_commands_from_another_thread_and_the_published_snapshot(store):
    control = SearchControl()
    reached, released = threading.Event(), threading.Event()

    def pause_driver():
        reached.set()
        released.wait(30)
        return []

    gate = When(lambda u: u.model_id == "m0001" and u.kind == "eval", pause_driver)
    outcome = {}
    thread = threading.Thread(
        target=lambda: outcome.update(result=make_driver(store, grid(), control, [gate]).run())
    )
    thread.start()
    assert reached.wait(30)
    snapshot = control.snapshot()
    assert (
        control.state == "running"
        and snapshot is not None
        and set(snapshot.models) == {"m0000", "m0001", "m0002"}
    )
    stop, add = control.submit(StopModel("m0002")), control.submit(AddModels(({"rate": 8.0},), epochs=1))
    released.set()
    assert stop.result(30) is None and add.result(30) == ["u0000"]
    thread.join(60)
    result = outcome["result"]
    assert result.models["m0002"].status == "stopped" and result.models["u0000"].status == "completed"
    assert control.state == "finished" and control.snapshot().models["u0000"].epochs == 1


def test_a_resume_gives_the_models_the_user_added_or_resumed_the_same_visiting_orders(store):
    """A model's visiting orders follow its admission index, not its id (u0000 is the 4th model
    added; m0000, stopped then resumed, keeps the 1st): the replay admits them in the same order, so
    every journal unit is runnable where it ran."""
    control = SearchControl()
    stop_and_add = When(lambda r: (r.model_id, r.epoch) == ("m0000", 1), lambda: [
        control.submit(StopModel("m0000")), control.submit(AddModels(({"rate": 3.0},))),
    ], on="epoch")  # fmt: skip
    resume = When(lambda r: (r.model_id, r.epoch) == ("u0000", 1),
                  lambda: [control.submit(ResumeModel("m0000", epochs=3))], on="epoch")  # fmt: skip
    interrupt = When(lambda u: (u.model_id, u.epoch) == ("m0000", 2), lambda: [control.submit(Interrupt())])
    with pytest.raises(KeyboardInterrupt):
        make_driver(store, grid(), control, [stop_and_add, resume, interrupt]).run()
    result = make_driver(store, grid(), SearchControl()).run(resume=True)
    assert [(result.models[m].status, result.models[m].epochs) for m in ("m0000", "u0000")] == [
        ("completed", 3), ("completed", 3)
    ]  # fmt: skip
    journal = [json.loads(line) for line in store.read_text(layout.journal_key("r1")).splitlines()]
    keys = [(u["model_id"], u["epoch"], u["partition"], u["kind"]) for u in journal]
    assert len(keys) == len(set(keys))
    sched = MopScheduler(2, seed=1)  # the driver's: 2 workers, seed 1
    for model_id in ("x0", "x1", "x2", "x3"):  # the 1st to 4th models added
        sched.add_model(model_id)
    for model_id, nth, epoch in (("u0000", "x3", 1), ("m0000", "x0", 2)):
        trained = [
            u["partition"]
            for u in journal
            if (u["model_id"], u["epoch"], u["kind"]) == (model_id, epoch, "train")
        ]
        assert tuple(trained) == sched.visiting_order(nth, epoch)
