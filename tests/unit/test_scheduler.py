"""Unit tests of the MOP scheduler, driven directly (no Spark, no simulator)."""

from __future__ import annotations

import random
import time

import pytest

from cerebro_spark.errors import InvalidParamError, SchedulerError
from cerebro_spark.scheduler import Assignment, EpochEnd, MopScheduler, Unit, UnitKind

TRAIN, EVAL = UnitKind.TRAIN, UnitKind.EVAL


def run_one(sched: MopScheduler, worker: int) -> tuple[Assignment, EpochEnd | None]:
    [a] = sched.next_assignments([worker])
    return a, sched.complete(a)


# -- construction ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True, None])
def test_num_workers_must_be_positive_int(bad):
    with pytest.raises(InvalidParamError, match=r"num_workers must be an int >= 1\. Received: num_workers="):
        MopScheduler(bad)


def test_seed_must_be_int_or_none():
    with pytest.raises(InvalidParamError, match=r"seed must be an int or None\. Received: seed='7'"):
        MopScheduler(2, seed="7")  # type: ignore[arg-type]


def test_seed_none_draws_a_recorded_seed():
    a, b = MopScheduler(3), MopScheduler(3)
    assert isinstance(a.seed, int) and a.seed != b.seed
    again = MopScheduler(3, seed=a.seed)
    for sched in (a, again):
        sched.add_model("m")
    assert again.visiting_order("m", 1) == a.visiting_order("m", 1)


def test_unit_kind_is_a_str_enum():
    assert UnitKind("train") is TRAIN and EVAL == "eval"


# -- one model, step by step ----------------------------------------------------------------------


def test_single_worker_train_then_eval_then_epoch_end():
    sched = MopScheduler(1, seed=0)
    sched.add_model("m0")
    a, end = run_one(sched, 0)
    assert a == Assignment(Unit("m0", 1, 0, TRAIN), 0) and end is None
    a, end = run_one(sched, 0)
    assert a.unit == Unit("m0", 1, 0, EVAL) and end == EpochEnd("m0", 1)
    assert sched.next_assignments([0]) == []  # waits for the driver
    assert sched.runnable_units(0) == []
    sched.continue_model("m0")
    a, end = run_one(sched, 0)
    assert a.unit == Unit("m0", 2, 0, TRAIN) and end is None


def test_without_evaluation_epoch_ends_after_last_train_unit():
    sched = MopScheduler(3, seed=1, evaluate=False)
    sched.add_model("m0")
    order = sched.visiting_order("m0", 1)
    ends = []
    for j in order:
        a, end = run_one(sched, j)
        assert a.unit == Unit("m0", 1, j, TRAIN)
        ends.append(end)
    assert ends == [None, None, EpochEnd("m0", 1)]


def test_fixed_order_only_next_partition_is_runnable():
    sched = MopScheduler(4, seed=3)
    sched.add_model("m0")
    first = sched.visiting_order("m0", 1)[0]
    assert [w for w in range(4) if sched.runnable_units(w)] == [first]
    assert [a.worker_id for a in sched.next_assignments(range(4))] == [first]


def test_any_order_every_unvisited_partition_is_runnable():
    sched = MopScheduler(4, seed=3, fixed_order=False, evaluate=False)
    sched.add_model("m0")
    assert all(sched.runnable_units(w) == [Unit("m0", 1, w, TRAIN)] for w in range(4))
    [a] = sched.next_assignments([2, 0, 1, 3])
    assert a.worker_id == 2  # the first idle worker takes it; the model then trains nowhere else
    assert all(sched.runnable_units(w) == [] for w in range(4))
    sched.complete(a)
    assert [w for w in range(4) if sched.runnable_units(w)] == [0, 1, 3]


def test_eval_units_run_on_all_workers_at_once():
    sched = MopScheduler(3, seed=0)
    sched.add_model("m0")
    for j in sched.visiting_order("m0", 1):
        run_one(sched, j)
    evals = sched.next_assignments([0, 1, 2])
    assert [a.unit for a in evals] == [Unit("m0", 1, j, EVAL) for j in range(3)]
    assert [sched.complete(a) for a in evals] == [None, None, EpochEnd("m0", 1)]


def test_add_model_with_next_epoch_resumes_there():
    sched = MopScheduler(2, seed=0)
    sched.add_model("m0", next_epoch=4)
    [a] = sched.next_assignments([0, 1])
    assert a.unit.epoch == 4 and a.unit.partition == sched.visiting_order("m0", 4)[0]


def test_put_back_makes_the_unit_runnable_again():
    sched = MopScheduler(2, seed=5, evaluate=False)
    sched.add_model("m0")
    [a] = sched.next_assignments([0, 1])
    assert sched.in_flight == (a,)
    sched.put_back(a)
    assert sched.in_flight == ()
    assert sched.runnable_units(a.worker_id) == [a.unit]
    assert sched.next_assignments([0, 1]) == [a]


def test_put_back_of_eval_unit():
    sched = MopScheduler(2, seed=5)
    sched.add_model("m0")
    for j in sched.visiting_order("m0", 1):
        run_one(sched, j)
    a, b = sched.next_assignments([0, 1])
    sched.put_back(a)
    assert sched.complete(b) is None
    assert sched.runnable_units(a.worker_id) == [a.unit]
    a2, end = run_one(sched, a.worker_id)
    assert a2 == a and end == EpochEnd("m0", 1)


def test_no_worker_idles_while_work_exists():
    sched = MopScheduler(4, seed=9, fixed_order=False)
    for i in range(6):
        sched.add_model(f"m{i}")
    got = sched.next_assignments([3, 1, 0, 2])
    assert len(got) == 4
    assert len({a.unit.model_id for a in got}) == 4  # a model trains on one worker at a time


def test_same_seed_same_decisions():
    def decisions(seed: int) -> list[Assignment]:
        sched = MopScheduler(3, seed=seed, fixed_order=False)
        for i in range(5):
            sched.add_model(f"m{i}")
        out = []
        for _ in range(20):
            got = sched.next_assignments(
                [w for w in range(3) if w not in {a.worker_id for a in sched.in_flight}]
            )
            out.extend(got)
            for a in got[:1]:
                sched.complete(a)
        return out

    assert decisions(11) == decisions(11)
    assert decisions(11) != decisions(12)


def test_active_models_and_is_finished():
    sched = MopScheduler(1, seed=0, evaluate=False)
    assert sched.is_finished()
    sched.add_model("b")
    sched.add_model("a")
    assert sched.active_models == ("b", "a") and not sched.is_finished()
    sched.stop_model("b")  # idle between units: allowed
    assert sched.active_models == ("a",)
    assert sched.runnable_units(0) == [Unit("a", 1, 0, TRAIN)]
    _, end = run_one(sched, 0)
    assert end == EpochEnd("a", 1)
    sched.stop_model("a")
    assert sched.is_finished()


def test_stop_model_during_evaluation_drops_its_eval_units():
    sched = MopScheduler(2, seed=0)
    sched.add_model("m0")
    for j in sched.visiting_order("m0", 1):
        run_one(sched, j)
    a, end = run_one(sched, 0)
    assert a.unit.kind is EVAL and end is None
    sched.stop_model("m0")
    assert sched.runnable_units(1) == [] and sched.is_finished()


def test_stopped_model_id_can_be_added_again():
    sched = MopScheduler(1, seed=0)
    sched.add_model("m0")
    sched.stop_model("m0")
    sched.add_model("m0", next_epoch=2)
    assert sched.runnable_units(0) == [Unit("m0", 2, 0, TRAIN)]


# -- visiting orders ------------------------------------------------------------------------------


def test_visiting_order_is_a_permutation_decided_by_seed_admission_index_and_epoch():
    a, b, c = MopScheduler(8, seed=4), MopScheduler(8, seed=4), MopScheduler(8, seed=5)
    for sched in (a, c):
        sched.add_model("m0")
        sched.add_model("m1")
    b.add_model("x")  # the ids play no part: the n-th model added gets the n-th offset
    b.add_model("y")
    b.complete(b.next_assignments(range(8))[0])  # nor does the state
    for m, n in (("m0", "x"), ("m1", "y")):
        for e in (1, 2, 3):
            assert sorted(a.visiting_order(m, e)) == list(range(8))
            assert a.visiting_order(m, e) == b.visiting_order(n, e)
    orders = {a.visiting_order(m, e) for m in ("m0", "m1") for e in (1, 2, 3)}
    assert len(orders) > 1
    assert a.visiting_order("m0", 1) != c.visiting_order("m0", 1)


def test_visiting_order_needs_an_active_model():
    sched = MopScheduler(2, seed=0)
    with pytest.raises(
        SchedulerError, match=r"Cannot give the visiting order of model 'm0': it is not an active"
    ):
        sched.visiting_order("m0", 1)


def test_a_model_added_again_keeps_its_admission_index():
    sched = MopScheduler(4, seed=0)
    sched.add_model("a")
    sched.add_model("b")
    before = sched.visiting_order("a", 2)
    sched.stop_model("a")
    sched.add_model("c")  # the third model added: offset 2
    sched.add_model("a", next_epoch=2)  # a stopped model resumed: still offset 0
    assert sched.visiting_order("a", 2) == before != sched.visiting_order("c", 2)


def test_visiting_order_needs_fixed_order():
    with pytest.raises(SchedulerError, match=r"visiting_order needs fixed_order=True"):
        MopScheduler(2, fixed_order=False).visiting_order("m0", 1)


# -- driver bugs ----------------------------------------------------------------------------------


def test_complete_something_not_in_flight():
    sched = MopScheduler(2, seed=0)
    sched.add_model("m0")
    ghost = Assignment(Unit("m0", 1, 0, TRAIN), 0)
    with pytest.raises(SchedulerError, match=r"Cannot complete .* it is not in flight"):
        sched.complete(ghost)
    [a] = sched.next_assignments([0, 1])
    sched.complete(a)
    with pytest.raises(SchedulerError, match=r"Cannot complete .* it is not in flight"):
        sched.complete(a)
    with pytest.raises(SchedulerError, match=r"Cannot put back .* it is not in flight"):
        sched.put_back(a)


@pytest.mark.parametrize("bad", [-1, 2, 1.0, "0"])
def test_worker_id_out_of_range(bad):
    sched = MopScheduler(2)
    with pytest.raises(SchedulerError, match=r"worker_id must be an int in \[0, 1\]\. Received: worker_id="):
        sched.next_assignments([bad])
    with pytest.raises(SchedulerError, match=r"worker_id must be an int in \[0, 1\]"):
        sched.runnable_units(bad)


def test_busy_or_repeated_worker_given_as_idle():
    sched = MopScheduler(1, seed=0)
    sched.add_model("m0")
    sched.next_assignments([0])
    with pytest.raises(SchedulerError, match=r"Worker 0 was given as idle but it runs Unit\("):
        sched.next_assignments([0])
    with pytest.raises(SchedulerError, match=r"Worker 1 appears twice"):
        MopScheduler(2).next_assignments([1, 1])


def test_continue_model_not_at_epoch_end():
    sched = MopScheduler(2, seed=0)
    sched.add_model("m0")
    with pytest.raises(SchedulerError, match=r"Cannot continue model 'm0': it is not at an epoch end"):
        sched.continue_model("m0")
    with pytest.raises(SchedulerError, match=r"Cannot continue model 'zz': it is not an active model"):
        sched.continue_model("zz")


def test_add_duplicate_model():
    sched = MopScheduler(2)
    sched.add_model("m0")
    with pytest.raises(
        SchedulerError, match=r"Cannot add model 'm0': a model with this id is already active"
    ):
        sched.add_model("m0")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"model_id": ""}, r"model_id must be a non-empty str\. Received: model_id=''"),
        ({"model_id": 3}, r"model_id must be a non-empty str\. Received: model_id=3"),
        ({"model_id": "m", "next_epoch": 0}, r"next_epoch must be an int >= 1\. Received: next_epoch=0"),
    ],
)
def test_add_model_bad_arguments(kwargs, match):
    with pytest.raises(InvalidParamError, match=match):
        MopScheduler(2).add_model(**kwargs)


def test_stop_model_in_flight_or_unknown():
    sched = MopScheduler(2, seed=0)
    sched.add_model("m0")
    sched.next_assignments([0, 1])
    with pytest.raises(SchedulerError, match=r"Cannot stop model 'm0' while it has a unit in flight"):
        sched.stop_model("m0")
    with pytest.raises(SchedulerError, match=r"Cannot stop model 'nope': it is not an active model"):
        sched.stop_model("nope")


# -- scale ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fixed_order", [True, False])
def test_scales_to_1024_models_on_64_workers(fixed_order):
    num_workers, rnd = 64, random.Random(0)
    sched = MopScheduler(num_workers, seed=0, fixed_order=fixed_order)
    for i in range(1024):
        sched.add_model(f"m{i:04d}")
    idle = list(range(num_workers))
    decisions, elapsed = 0, 0.0
    for _ in range(150):
        start = time.perf_counter()
        got = sched.next_assignments(idle)
        elapsed += time.perf_counter() - start
        decisions += len(got)
        busy = {a.worker_id for a in got}
        assert all(not sched.runnable_units(w) for w in idle if w not in busy)
        done = rnd.sample(sched.in_flight, 8)
        for a in done:
            if sched.complete(a) is not None:
                sched.continue_model(a.unit.model_id)
        idle = [w for w in range(num_workers) if w not in {a.worker_id for a in sched.in_flight}]
    assert elapsed / decisions < 1e-3


def test_assign_hands_out_a_chosen_runnable_unit_and_refuses_others():
    sched = MopScheduler(2, seed=0)
    for model_id in ("m0000", "m0001", "m0002"):
        sched.add_model(model_id)
    wanted = sorted(sched.runnable_units(0), key=lambda u: u.model_id)[-1]
    assignment = sched.assign(0, wanted)
    assert assignment.unit == wanted and assignment.worker_id == 0
    assert wanted not in sched.runnable_units(0)
    with pytest.raises(SchedulerError, match="busy"):
        sched.assign(0, wanted)
    with pytest.raises(SchedulerError, match="not runnable"):
        sched.assign(1, wanted)  # the model trains on worker 0 now
    assert sched.complete(assignment) is None
