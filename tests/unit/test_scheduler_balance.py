"""The MOP scheduler's load balancing: lagging models first, Latin-square visiting orders.

Makespans are measured with a simulated clock (unit times from a table, an event queue of
completions), so they do not depend on the machine's speed.
"""

from __future__ import annotations

import heapq
import random

import pytest

from cerebro_spark.scheduler import Assignment, MopScheduler, Unit, UnitKind


def makespan(sched: MopScheduler, models: list[str], epochs: int, time_of) -> float:
    """Run ``models`` for ``epochs`` epochs; ``time_of(unit)`` is a unit's duration."""
    for m in models:
        sched.add_model(m)
    events: list[tuple[float, int]] = []
    running: dict[int, Assignment] = {}
    now = 0.0
    while True:
        idle = [w for w in range(sched.num_workers) if w not in running]
        for a in sched.next_assignments(idle):
            running[a.worker_id] = a
            heapq.heappush(events, (now + time_of(a.unit), a.worker_id))
        if not events:
            break
        now, w = heapq.heappop(events)
        end = sched.complete(running.pop(w))
        if end is not None:
            (sched.continue_model if end.epoch < epochs else sched.stop_model)(end.model_id)
    assert sched.is_finished()
    return now


@pytest.mark.parametrize("num_workers", [2, 5, 8])
def test_latin_orders_give_models_added_in_a_row_distinct_partitions_at_every_step(num_workers):
    sched = MopScheduler(num_workers, seed=3)
    models = [f"model-{chr(ord('a') + i)}" for i in range(num_workers)]  # ids are opaque: no numbers
    for m in models:
        sched.add_model(m)
    for epoch in (1, 2):
        orders = [sched.visiting_order(m, epoch) for m in models]
        for step in range(num_workers):
            assert sorted(order[step] for order in orders) == list(range(num_workers))
    assert sched.visiting_order(models[0], 1) != sched.visiting_order(models[0], 2) or num_workers == 2


def test_the_offset_is_the_admission_index_whatever_the_id():
    a, b = MopScheduler(6, seed=1), MopScheduler(6, seed=1)
    for m in ("m0005", "alpha", "m0000"):
        a.add_model(m)
    for m in ("x", "y", "z"):
        b.add_model(m)
    assert [a.visiting_order(m, 1) for m in ("m0005", "alpha", "m0000")] == [
        b.visiting_order(m, 1) for m in ("x", "y", "z")
    ]
    assert sorted(a.visiting_order("alpha", 1)) == list(range(6))


def test_balance_picks_the_model_with_the_fewest_completed_units():
    sched = MopScheduler(2, seed=0, fixed_order=False, evaluate=False)
    sched.add_model("ahead")
    [a] = sched.next_assignments([0])
    sched.complete(a)  # "ahead" has trained one unit; it can still run on worker 1
    sched.add_model("behind")
    for _ in range(20):  # whatever the random draws, the lagging model goes first
        [b] = sched.next_assignments([1])
        assert b.unit.model_id == "behind"
        sched.put_back(b)


def test_without_balance_any_runnable_model_may_be_picked():
    picked = set()
    for seed in range(30):
        sched = MopScheduler(2, seed=seed, fixed_order=False, evaluate=False, balance=False)
        sched.add_model("ahead")
        [a] = sched.next_assignments([0])
        sched.complete(a)
        sched.add_model("behind")
        picked.add(sched.next_assignments([1])[0].unit.model_id)
    assert picked == {"ahead", "behind"}


@pytest.mark.parametrize("num_models,num_workers", [(8, 8), (16, 4), (32, 8)])
def test_homogeneous_units_with_fixed_orders_reach_the_lower_bound(num_models, num_workers):
    models = [f"m{i:04d}" for i in range(num_models)]
    epochs = 2
    span = makespan(MopScheduler(num_workers, seed=0, evaluate=False), models, epochs, lambda u: 1.0)
    assert span == max(num_models * epochs, num_workers * epochs)  # max(total / P, longest model)


def test_balance_shortens_the_makespan_with_as_many_models_as_workers():
    models = [f"m{i:04d}" for i in range(16)]
    rnd = random.Random(0)
    size = {m: rnd.uniform(1.0, 3.0) for m in models}
    spans = {}
    for balance in (True, False):
        spans[balance] = sum(
            makespan(MopScheduler(16, seed=s, fixed_order=False, evaluate=False, balance=balance),
                     models, 2, lambda u: size[u.model_id])
            for s in range(5)
        )  # fmt: skip
    bound = 5 * max(max(size.values()) * 16 * 2, sum(size.values()) * 2)
    assert spans[True] < spans[False]
    assert spans[True] <= 1.05 * bound


def test_put_back_of_an_equal_eval_assignment_leaves_no_stale_unit():
    sched = MopScheduler(2, seed=0)
    sched.add_model("m0")
    for j in sched.visiting_order("m0", 1):
        [a] = sched.next_assignments([j])
        sched.complete(a)
    [a] = sched.next_assignments([0])
    assert a.unit.kind is UnitKind.EVAL
    sched.put_back(Assignment(Unit("m0", 1, a.unit.partition, UnitKind.EVAL), a.worker_id))  # an equal copy
    sched.stop_model("m0")
    assert sched.runnable_units(0) == [] and sched.runnable_units(1) == []
    assert sched.next_assignments([0, 1]) == []
