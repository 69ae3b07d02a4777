"""Model Hopper Parallelism: the randomized unit scheduler of Cerebro (Algorithm 1).

A *unit* is (model, epoch, partition, kind). In each epoch a model trains once on each of the P
training partitions, one partition at a time, then (if ``evaluate``) is evaluated once on each of
the P validation partitions, possibly on several workers at once. A unit for partition ``j`` runs
only on worker ``j``. The scheduler is pure: the driver tells it which workers are idle and which
units finished; it answers with assignments. All randomness comes from ``seed``.

Two refinements of the paper's uniform random pick keep the makespan near its lower bound when
there are about as many models as workers, and in the tail of a search (measured with a simulated
clock in ``benchmarks/bench_scheduler_sim.py``):

- *lagging models first* (``balance=True``, the default): an idle worker picks at random among its
  runnable units of the models that have completed the fewest units so far, so no model falls behind
  and ends the search alone on one worker while the others idle;
- *Latin-square visiting orders* (with ``fixed_order``): in epoch ``e`` all models visit the
  partitions in rotations of one shuffled order, each model with its own offset, so models with
  different offsets never want the same worker at the same step. A model's offset is its admission
  index modulo P (the number of other models added before it first: models added in a row start on
  different workers; a model added again after a stop keeps its index), so model ids are opaque
  strings to the scheduler. A replay that adds the models in the same order (a resume does) gives
  them the same offsets.

For speed, every worker has a priority queue of the units it could run now (buckets by the models'
progress, each an O(1) add, remove and random pick), kept up to date as models change state, so a
decision never scans all models.
"""

from __future__ import annotations

import enum
import heapq
import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from cerebro_spark.errors import InvalidParamError, SchedulerError

logger = logging.getLogger(__name__)


class UnitKind(str, enum.Enum):
    """What a unit does: train a model on a partition, or evaluate it on a validation partition."""

    TRAIN = "train"
    EVAL = "eval"


@dataclass(frozen=True, slots=True)
class Unit:
    """One piece of work: ``kind`` of model ``model_id`` in ``epoch`` (1-based) on ``partition``."""

    model_id: str
    epoch: int
    partition: int
    kind: UnitKind


@dataclass(frozen=True, slots=True)
class Assignment:
    """A unit given to a worker (``worker_id == unit.partition``)."""

    unit: Unit
    worker_id: int


@dataclass(frozen=True, slots=True)
class EpochEnd:
    """Model ``model_id`` finished ``epoch``: it waits for ``continue_model`` or ``stop_model``."""

    model_id: str
    epoch: int


class _Bag:
    """A set of units with O(1) add, discard and uniform random pick (a list plus positions).

    Units are keyed by identity (hashing a dataclass is slow): the scheduler keeps one Unit object
    per (model, epoch, partition, kind) and always discards that same object.
    """

    __slots__ = ("items", "_pos")

    def __init__(self) -> None:
        self.items: list[Unit] = []
        self._pos: dict[int, int] = {}

    def add(self, unit: Unit) -> None:
        self._pos[id(unit)] = len(self.items)
        self.items.append(unit)

    def discard(self, unit: Unit) -> None:
        i = self._pos.pop(id(unit), None)
        if i is None:
            return
        last = self.items.pop()
        if i < len(self.items):
            self.items[i] = last
            self._pos[id(last)] = i


class _Queue:
    """The units one worker could run, bucketed by priority level (lower first), random within a level."""

    __slots__ = ("_bags", "_heap", "_level")

    def __init__(self) -> None:
        self._bags: dict[int, _Bag] = {}
        self._heap: list[int] = []  # levels, possibly stale (empty buckets are dropped lazily)
        self._level: dict[int, int] = {}  # id(unit) -> its level

    def __bool__(self) -> bool:
        return bool(self._level)

    def items(self) -> list[Unit]:
        return [unit for bag in self._bags.values() for unit in bag.items]

    def add(self, unit: Unit, level: int) -> None:
        bag = self._bags.get(level)
        if bag is None:
            bag = self._bags[level] = _Bag()
            heapq.heappush(self._heap, level)
        bag.add(unit)
        self._level[id(unit)] = level

    def discard(self, unit: Unit) -> None:
        level = self._level.pop(id(unit), None)
        if level is not None:
            self._bags[level].discard(unit)

    def pick(self, rng: random.Random) -> Unit:
        """A random unit of the lowest level."""
        while True:
            level = self._heap[0]
            bag = self._bags[level]
            if bag.items:
                return bag.items[rng.randrange(len(bag.items))]
            heapq.heappop(self._heap)
            del self._bags[level]


class _Phase(enum.Enum):
    TRAIN = "train"
    EVAL = "eval"
    EPOCH_END = "epoch_end"


@dataclass(slots=True)
class _Model:
    model_id: str
    epoch: int
    offset: int  # its visiting orders' rotation: its admission index mod P
    phase: _Phase = _Phase.TRAIN
    todo: list[int] = field(default_factory=list)  # partitions left to train, in visiting order if fixed
    training: bool = False  # a TRAIN unit is in flight
    evals_left: int = 0  # EVAL units of this epoch not yet completed
    evals_running: int = 0
    units: list[Unit] = field(default_factory=list)  # this epoch's TRAIN units, by partition
    eval_units: list[Unit] = field(default_factory=list)  # this epoch's EVAL units, by partition

    def progress(self, num_workers: int) -> int:
        """Training units completed since epoch 1 (whether or not they ran in this scheduler)."""
        return (self.epoch - 1) * num_workers + num_workers - len(self.todo)


class MopScheduler:
    """Decide which unit each idle worker runs next (Cerebro's randomized MOP scheduler).

    Parameters
    ----------
    num_workers : int
        Number of workers P (>= 1); also the number of training and of validation partitions.
        Worker ``w`` holds training partition ``w`` and validation partition ``w``.
    seed : int or None, optional
        Seeds the random choices and the visiting orders. None (the default) draws a fresh
        seed, readable afterwards as ``scheduler.seed``.
    fixed_order : bool, optional
        True (the default): each model visits the partitions of epoch ``e`` in the order
        :meth:`visiting_order` gives, decided by (seed, the model's admission index, epoch) only,
        never by timing.
        False: any partition not yet visited this epoch is runnable (the paper's Algorithm 1).
    evaluate : bool, optional
        True (the default): each epoch ends with P EVAL units, one per validation partition.
    balance : bool, optional
        True (the default): an idle worker picks among the runnable units of the models that have
        completed the fewest units (at random among those). False: among all its runnable units,
        uniformly (the paper's Algorithm 1). Either way no worker idles while it has a runnable unit.

    Raises
    ------
    InvalidParamError
        If ``num_workers`` is not an int >= 1 or ``seed`` is not an int or None.

    Examples
    --------
    >>> sched = MopScheduler(2, seed=0, evaluate=False)
    >>> sched.add_model("m0000")
    >>> [a] = sched.next_assignments([0, 1])
    >>> a.unit.model_id, a.unit.kind.value
    ('m0000', 'train')
    """

    def __init__(
        self,
        num_workers: int,
        *,
        seed: int | None = None,
        fixed_order: bool = True,
        evaluate: bool = True,
        balance: bool = True,
    ) -> None:
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
            raise InvalidParamError(f"num_workers must be an int >= 1. Received: num_workers={num_workers!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise InvalidParamError(f"seed must be an int or None. Received: seed={seed!r}")
        self.num_workers = num_workers
        self.seed: int = random.SystemRandom().randrange(2**63) if seed is None else seed
        self.fixed_order = fixed_order
        self.evaluate = evaluate
        self.balance = balance
        self._rng = random.Random(self.seed)
        self._models: dict[str, _Model] = {}
        self._admitted: dict[str, int] = {}  # every model id added so far -> its admission index
        self._bags = [_Queue() for _ in range(num_workers)]
        self._busy: dict[int, Assignment] = {}

    # -- queries ---------------------------------------------------------------------------------

    @property
    def in_flight(self) -> tuple[Assignment, ...]:
        """The assignments handed out and not yet completed or put back, by worker id."""
        return tuple(self._busy[w] for w in sorted(self._busy))

    @property
    def active_models(self) -> tuple[str, ...]:
        """Models added and not stopped, in the order they were added."""
        return tuple(self._models)

    def is_finished(self) -> bool:
        """Return True when no model is active and nothing is in flight."""
        return not self._models and not self._busy

    def runnable_units(self, worker_id: int) -> list[Unit]:
        """Return the units worker ``worker_id`` could start now (in no particular order)."""
        self._check_worker(worker_id)
        return self._bags[worker_id].items()

    def visiting_order(self, model_id: str, epoch: int) -> tuple[int, ...]:
        """Return the order in which active model ``model_id`` trains on the partitions in ``epoch``.

        A permutation of ``range(P)`` that depends only on (seed, the model's admission index,
        epoch): a rotation of the epoch's shuffled order of partitions (the same for all models) by
        the model's offset. The offset is the model's admission index (the number of other models
        added before it was first added: a model added again after a stop keeps its index) modulo P,
        so that models added in a row start on different workers; the model id itself plays no part.

        Raises
        ------
        SchedulerError
            If the scheduler was created with ``fixed_order=False`` (then timing decides), or
            ``model_id`` is not an active model.
        """
        if not self.fixed_order:
            raise SchedulerError(
                "visiting_order needs fixed_order=True: with fixed_order=False the order of "
                f"partitions depends on timing. Received: model_id={model_id!r}, epoch={epoch!r}"
            )
        return self._visiting_order(self._get(model_id, "give the visiting order of"), epoch)

    # -- commands --------------------------------------------------------------------------------

    def add_model(self, model_id: str, *, next_epoch: int = 1) -> None:
        """Make ``model_id`` active and start its epoch ``next_epoch`` (> 1 when resuming).

        Raises
        ------
        SchedulerError
            If a model with this id is active (a stopped model's id may be added again).
        InvalidParamError
            If ``model_id`` is not a non-empty str or ``next_epoch`` not an int >= 1.
        """
        if not isinstance(model_id, str) or not model_id:
            raise InvalidParamError(f"model_id must be a non-empty str. Received: model_id={model_id!r}")
        if isinstance(next_epoch, bool) or not isinstance(next_epoch, int) or next_epoch < 1:
            raise InvalidParamError(f"next_epoch must be an int >= 1. Received: next_epoch={next_epoch!r}")
        if model_id in self._models:
            raise SchedulerError(f"Cannot add model {model_id!r}: a model with this id is already active.")
        index = self._admitted.setdefault(model_id, len(self._admitted))
        model = _Model(model_id, next_epoch, offset=index % self.num_workers)
        self._models[model_id] = model
        self._start_epoch(model)

    def next_assignments(self, idle_workers: Iterable[int]) -> list[Assignment]:
        """Give each idle worker (in the given order) a random runnable unit, if it has one.

        Parameters
        ----------
        idle_workers : Iterable[int]
            Ids of the workers with nothing in flight.

        Returns
        -------
        list[Assignment]
            At most one per idle worker; they are in flight until :meth:`complete` or
            :meth:`put_back`. An idle worker left out has no runnable unit.

        Raises
        ------
        SchedulerError
            If a worker id is out of range, busy, or given twice.
        """
        idle = list(idle_workers)
        seen: set[int] = set()
        for w in idle:
            self._check_worker(w)
            if w in self._busy:
                raise SchedulerError(f"Worker {w} was given as idle but it runs {self._busy[w].unit}.")
            if w in seen:
                raise SchedulerError(f"Worker {w} appears twice in idle_workers={idle!r}.")
            seen.add(w)
        assignments = []
        for w in idle:
            bag = self._bags[w]
            if bag:
                assignments.append(self._hand_out(w, bag.pick(self._rng)))
        return assignments

    def assign(self, worker_id: int, unit: Unit) -> Assignment:
        """Hand ``unit`` to idle worker ``worker_id``, as :meth:`next_assignments` would have.

        For replaying a journal (resume): the unit must be one of :meth:`runnable_units`.

        Raises
        ------
        SchedulerError
            If the worker is busy or ``unit`` is not runnable on it now.
        """
        self._check_worker(worker_id)
        if worker_id in self._busy:
            raise SchedulerError(f"Worker {worker_id} is busy with {self._busy[worker_id].unit}.")
        for candidate in self._bags[worker_id].items():
            if candidate == unit:
                return self._hand_out(worker_id, candidate)  # the scheduler's own object
        raise SchedulerError(f"Unit {unit} is not runnable on worker {worker_id}.")

    def _hand_out(self, w: int, unit: Unit) -> Assignment:
        model = self._models[unit.model_id]
        if unit.kind is UnitKind.TRAIN:
            self._withdraw_training(model)
            model.training = True
        else:
            self._bags[w].discard(unit)
            model.evals_running += 1
        assignment = Assignment(unit, w)
        self._busy[w] = assignment
        logger.debug("assigned %s to worker %d", unit, w)
        return assignment

    def complete(self, assignment: Assignment) -> EpochEnd | None:
        """Record that ``assignment`` finished; its worker is free again.

        Returns
        -------
        EpochEnd or None
            An :class:`EpochEnd` when this unit was the model's last of the epoch; the model then
            waits for :meth:`continue_model` or :meth:`stop_model`.

        Raises
        ------
        SchedulerError
            If ``assignment`` is not in flight.
        """
        model = self._release(assignment, "complete")
        unit = assignment.unit
        if unit.kind is UnitKind.TRAIN:
            model.training = False
            model.todo.remove(unit.partition)
            if model.todo:
                self._offer_training(model)
                return None
            if self.evaluate:
                model.phase = _Phase.EVAL
                model.evals_left = self.num_workers
                level = self._level(model)
                model.eval_units = [
                    Unit(model.model_id, model.epoch, j, UnitKind.EVAL) for j in range(self.num_workers)
                ]
                for unit, bag in zip(model.eval_units, self._bags, strict=True):
                    bag.add(unit, level)
                return None
        else:
            model.evals_running -= 1
            model.evals_left -= 1
            if model.evals_left:
                return None
        model.phase = _Phase.EPOCH_END
        return EpochEnd(model.model_id, model.epoch)

    def put_back(self, assignment: Assignment) -> None:
        """Undo ``assignment`` (it did not happen): its unit is runnable again and its worker free."""
        model = self._release(assignment, "put back")
        if assignment.unit.kind is UnitKind.TRAIN:
            model.training = False
            self._offer_training(model)
        else:
            model.evals_running -= 1
            unit = model.eval_units[
                assignment.unit.partition
            ]  # the scheduler's own object (bags key by identity)
            self._bags[assignment.worker_id].add(unit, self._level(model))

    def continue_model(self, model_id: str) -> None:
        """Start the next epoch of ``model_id``, which must be at an epoch end."""
        model = self._get(model_id, "continue")
        if model.phase is not _Phase.EPOCH_END:
            raise SchedulerError(
                f"Cannot continue model {model_id!r}: it is not at an epoch end "
                f"(it is in epoch {model.epoch}, phase {model.phase.value!r})."
            )
        model.epoch += 1
        self._start_epoch(model)

    def stop_model(self, model_id: str) -> None:
        """Remove ``model_id`` and drop its remaining units; it must have no unit in flight."""
        model = self._get(model_id, "stop")
        if model.training or model.evals_running:
            raise SchedulerError(
                f"Cannot stop model {model_id!r} while it has a unit in flight; "
                "complete or put back its units first."
            )
        if model.phase is _Phase.TRAIN:
            self._withdraw_training(model)
        elif model.phase is _Phase.EVAL:
            for unit, bag in zip(model.eval_units, self._bags, strict=True):
                bag.discard(unit)
        del self._models[model_id]

    # -- internals -------------------------------------------------------------------------------

    def _start_epoch(self, model: _Model) -> None:
        model.phase = _Phase.TRAIN
        if self.fixed_order:
            model.todo = list(self._visiting_order(model, model.epoch))
        else:
            model.todo = list(range(self.num_workers))
        model.units = [Unit(model.model_id, model.epoch, j, UnitKind.TRAIN) for j in range(self.num_workers)]
        self._offer_training(model)

    def _train_units(self, model: _Model) -> list[Unit]:
        parts = model.todo[:1] if self.fixed_order else model.todo
        return [model.units[j] for j in parts]

    def _level(self, model: _Model) -> int:
        """The priority of the model's units (lower first): its progress, or one level for all models."""
        return model.progress(self.num_workers) if self.balance else 0

    def _offer_training(self, model: _Model) -> None:
        level = self._level(model)
        for unit in self._train_units(model):
            self._bags[unit.partition].add(unit, level)

    def _withdraw_training(self, model: _Model) -> None:
        for unit in self._train_units(model):
            self._bags[unit.partition].discard(unit)

    def _visiting_order(self, model: _Model, epoch: int) -> tuple[int, ...]:
        """The epoch's shuffled order of partitions, rotated by the model's offset (see
        :meth:`visiting_order`)."""
        order = list(range(self.num_workers))
        random.Random(f"{self.seed}:epoch:{epoch}").shuffle(order)
        return tuple(order[model.offset :] + order[: model.offset])

    def _release(self, assignment: Assignment, verb: str) -> _Model:
        if self._busy.get(assignment.worker_id) != assignment:
            raise SchedulerError(f"Cannot {verb} {assignment}: it is not in flight.")
        del self._busy[assignment.worker_id]
        return self._models[assignment.unit.model_id]

    def _get(self, model_id: str, verb: str) -> _Model:
        model = self._models.get(model_id)
        if model is None:
            raise SchedulerError(f"Cannot {verb} model {model_id!r}: it is not an active model.")
        return model

    def _check_worker(self, worker_id: int) -> None:
        if (
            isinstance(worker_id, bool)
            or not isinstance(worker_id, int)
            or not 0 <= worker_id < self.num_workers
        ):
            raise SchedulerError(
                f"worker_id must be an int in [0, {self.num_workers - 1}]. Received: worker_id={worker_id!r}"
            )
