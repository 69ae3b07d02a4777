"""Property tests of the MOP scheduler: a tiny discrete-event simulator checks the invariants.

Durations (and which in-flight units fail and are put back) are drawn from hypothesis' data, so
every run replays exactly and shrinks to a small counter-example.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from cerebro_spark.scheduler import Assignment, EpochEnd, MopScheduler, UnitKind

TRAIN, EVAL = UnitKind.TRAIN, UnitKind.EVAL


@dataclass
class Trace:
    """What a simulation saw: per (model, epoch), the partitions in the order each kind completed."""

    trained: dict[tuple[str, int], list[int]] = field(default_factory=lambda: defaultdict(list))
    evaluated: dict[tuple[str, int], list[int]] = field(default_factory=lambda: defaultdict(list))
    epochs_done: Counter[str] = field(default_factory=Counter)
    put_backs: int = 0
    assignments: list[Assignment] = field(default_factory=list)


def check_in_flight(sched: MopScheduler, epoch_of: dict[str, int], trace: Trace) -> None:
    train_by_model: Counter[str] = Counter()
    eval_models = set()
    workers = [a.worker_id for a in sched.in_flight]
    assert len(workers) == len(set(workers)), "two units on one worker"
    for a in sched.in_flight:
        unit = a.unit
        assert unit.partition == a.worker_id
        assert unit.epoch == epoch_of[unit.model_id]
        if unit.kind is TRAIN:
            train_by_model[unit.model_id] += 1
        else:
            eval_models.add(unit.model_id)
            # evaluation starts only after the whole training epoch
            assert len(trace.trained[unit.model_id, unit.epoch]) == sched.num_workers
    assert all(n == 1 for n in train_by_model.values()), "a model trains on two workers at once"
    assert not eval_models & set(train_by_model), "a model trains while it is evaluated"


def check_epoch_end(sched: MopScheduler, end: EpochEnd, trace: Trace, evaluate: bool) -> None:
    key = (end.model_id, end.epoch)
    assert sorted(trace.trained[key]) == list(range(sched.num_workers))
    assert sorted(trace.evaluated[key]) == (list(range(sched.num_workers)) if evaluate else [])
    if sched.fixed_order:
        assert tuple(trace.trained[key]) == sched.visiting_order(*key)


def simulate(
    sched: MopScheduler,
    model_ids: list[str],
    epochs: dict[str, int],
    rnd: random.Random,
    put_back_prob: float = 0.0,
    max_put_backs: int = 20,
) -> Trace:
    """Run every model for ``epochs[model]`` epochs with random durations; check invariants each step."""
    trace = Trace()
    epoch_of = dict.fromkeys(model_ids, 1)
    for m in model_ids:
        sched.add_model(m)
    idle = set(range(sched.num_workers))
    events: list[tuple[float, int, Assignment]] = []
    now, seq = 0.0, 0
    while True:
        got = sched.next_assignments(sorted(idle))
        for a in got:
            assert a.worker_id in idle
            idle.discard(a.worker_id)
            heapq.heappush(events, (now + rnd.uniform(0.1, 3.0), seq, a))
            seq += 1
        trace.assignments.extend(got)
        check_in_flight(sched, epoch_of, trace)
        assert set(sched.in_flight) == {a for _, _, a in events}
        for w in idle:
            assert sched.runnable_units(w) == [], f"worker {w} idles while work exists"
        if not events:
            break
        now, _, a = heapq.heappop(events)
        idle.add(a.worker_id)
        if trace.put_backs < max_put_backs and rnd.random() < put_back_prob:
            sched.put_back(a)
            trace.put_backs += 1
            continue
        end = sched.complete(a)
        unit = a.unit
        done = trace.trained if unit.kind is TRAIN else trace.evaluated
        assert unit.partition not in done[unit.model_id, unit.epoch], "a unit ran twice"
        done[unit.model_id, unit.epoch].append(unit.partition)
        if end is None:
            continue
        check_epoch_end(sched, end, trace, sched.evaluate)
        trace.epochs_done[end.model_id] += 1
        if end.epoch < epochs[end.model_id]:
            sched.continue_model(end.model_id)
            epoch_of[end.model_id] += 1
        else:
            sched.stop_model(end.model_id)
    assert sched.is_finished()
    return trace


@settings(max_examples=150, deadline=None)
@given(
    num_workers=st.integers(1, 6),
    num_models=st.integers(1, 12),
    num_epochs=st.integers(1, 4),
    fixed_order=st.booleans(),
    evaluate=st.booleans(),
    balance=st.booleans(),
    seed=st.integers(0, 2**32),
    put_back_prob=st.sampled_from([0.0, 0.05, 0.2]),
    rnd=st.randoms(use_true_random=False),
)
def test_mop_invariants_hold_in_simulation(
    num_workers, num_models, num_epochs, fixed_order, evaluate, balance, seed, put_back_prob, rnd
):
    sched = MopScheduler(num_workers, seed=seed, fixed_order=fixed_order, evaluate=evaluate, balance=balance)
    models = [f"m{i:04d}" for i in range(num_models)]
    trace = simulate(sched, models, dict.fromkeys(models, num_epochs), rnd, put_back_prob)
    assert trace.epochs_done == dict.fromkeys(models, num_epochs)
    for m in models:
        for e in range(1, num_epochs + 1):
            assert sorted(trace.trained[m, e]) == list(range(num_workers))


@settings(max_examples=60, deadline=None)
@given(
    num_workers=st.integers(1, 6),
    num_models=st.integers(1, 12),
    seed=st.integers(0, 2**32),
    evaluate=st.booleans(),
    rnd_a=st.randoms(use_true_random=False),
    rnd_b=st.randoms(use_true_random=False),
)
def test_fixed_order_ignores_timing_and_model_ids(num_workers, num_models, seed, evaluate, rnd_a, rnd_b):
    models = [f"m{i:04d}" for i in range(num_models)]
    renamed = models[::-1]  # added in the same order under other ids: the ids' numbers reversed
    epochs = dict.fromkeys(models, 3)
    a = simulate(MopScheduler(num_workers, seed=seed, evaluate=evaluate), models, epochs, rnd_a, 0.1)
    b = simulate(MopScheduler(num_workers, seed=seed, evaluate=evaluate), renamed, epochs, rnd_b, 0.0)
    back = dict(zip(renamed, models, strict=True))
    assert dict(a.trained) == {(back[m], e): order for (m, e), order in b.trained.items()}


def test_fixed_orders_differ_across_models_and_epochs():
    sched = MopScheduler(4, seed=0, evaluate=False)
    models = [f"m{i:04d}" for i in range(10)]
    trace = simulate(sched, models, dict.fromkeys(models, 3), random.Random(0))
    orders = [tuple(order) for order in trace.trained.values()]
    assert len(orders) == 30
    assert len(set(orders)) > 5
    assert sum(order == (0, 1, 2, 3) for order in orders) < 10
    for m in models:
        assert len({tuple(trace.trained[m, e]) for e in (1, 2, 3)}) > 1 or m == models[-1]


@settings(max_examples=40, deadline=None)
@given(fixed_order=st.booleans(), seed=st.integers(0, 2**16), rnd=st.randoms(use_true_random=False))
def test_stopping_a_model_mid_search_frees_workers_for_the_others(fixed_order, seed, rnd):
    num_workers = 3
    models = ["short", "long0", "long1"]
    epochs = {"short": 1, "long0": 3, "long1": 3}
    sched = MopScheduler(num_workers, seed=seed, fixed_order=fixed_order)
    trace = simulate(sched, models, epochs, rnd)
    assert trace.epochs_done == epochs
    last_short = max(i for i, a in enumerate(trace.assignments) if a.unit.model_id == "short")
    assert all(a.unit.epoch == 1 for a in trace.assignments if a.unit.model_id == "short")
    # every unit after the stop is the others' (simulate checked that no worker idled meanwhile)
    assert all(a.unit.model_id != "short" for a in trace.assignments[last_short + 1 :])


def test_stop_model_while_idle_between_units_hands_its_partitions_to_others():
    sched = MopScheduler(2, seed=3, evaluate=False)
    sched.add_model("a")
    sched.add_model("b")
    first = sched.next_assignments([0, 1])
    for a in first:
        sched.complete(a)
    sched.stop_model("a")  # idle between units: allowed, its remaining units vanish
    assert all(u.model_id == "b" for w in range(2) for u in sched.runnable_units(w))
    rest = simulate_rest(sched)
    assert {a.unit.model_id for a in rest} <= {"b"}
    assert sched.is_finished()


def simulate_rest(sched: MopScheduler) -> list[Assignment]:
    """Drive the remaining units one completion at a time, stopping models at their epoch end."""
    done: list[Assignment] = []
    while not sched.is_finished():
        busy = {a.worker_id for a in sched.in_flight}
        sched.next_assignments([w for w in range(sched.num_workers) if w not in busy])
        a = sched.in_flight[0]
        done.append(a)
        end = sched.complete(a)
        if end is not None:
            sched.stop_model(end.model_id)
    return done
