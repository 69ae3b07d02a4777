"""The backend's workers as the driver sees them: :class:`Workers`.

It keeps the units in flight (one per busy worker), starts and sets up the workers, and relaunches
them when they are lost: the units in flight are put back and run again, nothing else is
retrained, up to the backend's ``max_restarts`` relaunches.

A loss is blamed on the model whose unit ran on the lost worker (the *suspect*; a barrier stage loses
every worker, but the others are bystanders). A model that is the suspect of :data:`CULPRIT_LOSSES`
losses is the *culprit*: the driver fails it alone, with the loss as its reason, and its losses no
longer count against ``max_restarts``, which is kept for faults no model explains.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cerebro_spark.backend.base import Backend, TaskRequest, TaskResult, WorkerLostError
from cerebro_spark.driver.records import UnitRecord
from cerebro_spark.driver.settings import RunSettings, unit_deadline
from cerebro_spark.errors import BackendError, InvalidParamError, TaskFailedError
from cerebro_spark.scheduler import Assignment

logger = logging.getLogger(__name__)

#: A model whose unit was running on the lost worker this many times is failed, alone.
CULPRIT_LOSSES = 2

#: ``put_back(assignments, culprit, lost)``: the units in flight, and the model to fail (or None).
PutBack = Callable[[Sequence[Assignment], "str | None", "WorkerLostError | None"], None]


@dataclass
class Flight:
    """A unit in flight: its assignment and when it was submitted."""

    assignment: Assignment
    submitted_at: float

    def unit_record(self, result: TaskResult, *, version: int) -> UnitRecord:
        """The record of this unit, completed with ``result`` (its model now at ``version``)."""
        unit, value = self.assignment.unit, result.value
        return UnitRecord(
            model_id=unit.model_id,
            epoch=unit.epoch,
            partition=unit.partition,
            kind=unit.kind.value,
            worker_id=self.assignment.worker_id,
            version=version,
            rows=int(value["rows"]),
            metrics=dict(value["metrics"]),
            timings=dict(value.get("timings", {})),
            submitted_at=self.submitted_at,
            started_at=result.started_at,
            finished_at=result.finished_at,
            received_at=time.time(),
        )


class Workers:
    """The units in flight on the backend's workers, the workers' start-up and their relaunches.

    Parameters
    ----------
    backend : Backend
        Runs the tasks.
    settings : RunSettings
        The seed and determinism the workers are set up with; how long to wait for a result.
    setup_task : str
        The dotted path of the task that sets a worker up.

    Attributes
    ----------
    losses : list of dict
        One entry per relaunch of the workers: the worker lost, why, the units put back, when.
    """

    def __init__(self, backend: Backend, settings: RunSettings, setup_task: str) -> None:
        self.backend = backend
        self.settings = settings
        self.setup_task = setup_task
        self.losses: list[dict[str, Any]] = []
        self._flights: dict[int, Flight] = {}
        self._refused: list[TaskResult] = []
        self._longest_s = 0.0  # the longest unit so far, submission to result
        self._task_ids = 0
        #: What each worker's set-up task returned (pid, threads, TensorFlow, device), by worker id.
        self.setups: dict[int, dict[str, Any]] = {}

    # ---- units in flight -------------------------------------------------------------------------

    def idle(self) -> list[int]:
        """The workers with no unit in flight."""
        busy = {flight.assignment.worker_id for flight in self._flights.values()}
        return [w for w in range(self.backend.num_workers) if w not in busy]

    def submit(self, assignment: Assignment, request: Callable[[int, Assignment], TaskRequest]) -> None:
        """Run ``request(task_id, assignment)`` on the assignment's worker."""
        task_id = self.track(assignment, time.time())
        try:
            self.backend.submit(assignment.worker_id, request(task_id, assignment))
        except InvalidParamError as exc:  # it cannot cross to the worker (unpicklable, too large): it fails
            now = time.time()
            self._refused.append(
                TaskResult(
                    task_id, assignment.worker_id, False, error=str(exc), started_at=now, finished_at=now
                )
            )

    def track(self, assignment: Assignment, submitted_at: float) -> int:
        """Count ``assignment`` in flight (a resume tracks the journal's units so); returns its task id."""
        task_id = self._new_task_id()
        self._flights[task_id] = Flight(assignment, submitted_at)
        return task_id

    def land(self, task_id: int) -> Flight | None:
        """The flight of a task whose result came (None for an unknown task); no longer in flight."""
        flight = self._flights.pop(task_id, None)
        if flight is not None:
            self._longest_s = max(self._longest_s, time.time() - flight.submitted_at)
        return flight

    def busy(self) -> bool:
        """Whether any unit is in flight."""
        return bool(self._flights)

    def in_flight(self, model_id: str) -> bool:
        """Whether a unit of the model is in flight."""
        return any(f.assignment.unit.model_id == model_id for f in self._flights.values())

    def next_result(self) -> TaskResult:
        """The next result. :class:`WorkerLostError` when the backend lost a worker, or when a unit ran
        past its deadline (:func:`~cerebro_spark.driver.settings.unit_deadline`): its worker is taken for
        hung, and the loss is blamed on the unit's model as any other."""
        if self._refused:  # a request that never left: its failure first
            return self._refused.pop(0)
        give_up = time.monotonic() + self.settings.result_timeout_s
        while True:
            overdue = self._overdue(time.time())  # (flights carry wall-clock times)
            if overdue is not None:
                flight, limit = overdue
                self.backend.mark_lost(lost := self._hung(flight, limit))
                raise lost
            wait = min(give_up - time.monotonic(), self._until_next_deadline(time.time()))
            result = self.backend.next_result(timeout=max(0.0, wait))
            if result is not None:
                return result
            if time.monotonic() >= give_up:
                raise BackendError(
                    f"No worker reported for {self.settings.result_timeout_s:.0f}s "
                    f"(units in flight: {[f.assignment.unit for f in self._flights.values()]})."
                )

    def _deadline_s(self) -> float:
        return unit_deadline(self.settings, self._longest_s)

    def _overdue(self, now: float) -> tuple[Flight, float] | None:
        limit = self._deadline_s()
        late = [f for f in self._flights.values() if now - f.submitted_at > limit]
        return (min(late, key=lambda f: f.submitted_at), limit) if late else None

    def _until_next_deadline(self, now: float) -> float:
        """Seconds until the oldest flight's deadline has just passed (infinite with none in flight)."""
        if not self._flights:
            return float("inf")
        oldest = min(f.submitted_at for f in self._flights.values())
        return max(0.0, oldest + self._deadline_s() - now) + 0.01

    @staticmethod
    def _hung(flight: Flight, limit: float) -> WorkerLostError:
        unit, worker = flight.assignment.unit, flight.assignment.worker_id
        age = time.time() - flight.submitted_at
        reason = f"its {unit.kind.value} unit ran {age:.0f} s, past the deadline of {limit:.0f} s"
        return WorkerLostError(
            f"Worker {worker} is taken for hung: {reason} (model {unit.model_id}, epoch {unit.epoch}, partition "
            f"{unit.partition}). Set CEREBRO_UNIT_TIMEOUT_S for units that may take longer.",
            worker_id=worker,
            reason=reason,
        )

    # ---- start-up and losses ---------------------------------------------------------------------

    def start(self, put_back: PutBack, lost: WorkerLostError | None = None) -> None:
        """Start the workers and set them up; after ``lost``, hand the units in flight to
        ``put_back`` and relaunch the workers (again while they are lost during set-up)."""
        while True:
            if lost is None:
                if not self.backend.is_running:  # else started early, while the driver built models
                    self.backend.start()
            else:
                self._on_lost(lost, put_back)
                self.backend.restart()
            try:
                self._set_up()
                return
            except WorkerLostError as again:
                lost = again

    def _set_up(self) -> None:
        kwargs: dict[str, Any] = {"seed": self.settings.seed, "deterministic": self.settings.deterministic}
        if self.settings.keras_backend is not None:
            kwargs["keras_backend_name"] = self.settings.keras_backend
        for worker in range(self.backend.num_workers):
            self.backend.submit(worker, TaskRequest(self._new_task_id(), self.setup_task, kwargs))
        for _ in range(self.backend.num_workers):
            result = self.next_result()
            if not result.ok:
                raise TaskFailedError(
                    f"Worker {result.worker_id} failed to set up: {result.error}\n{result.traceback}",
                    worker_id=result.worker_id,
                    remote_traceback=result.traceback,
                )
            self.setups[result.worker_id] = dict(result.value) if isinstance(result.value, dict) else {}
            logger.info(
                "worker %d set up: %s", result.worker_id, _describe_setup(self.setups[result.worker_id])
            )

    def _on_lost(self, lost: WorkerLostError, put_back: PutBack) -> None:
        """Put back every unit in flight (a lost barrier stage loses them all), naming the culprit if
        the loss makes one (see the module docstring); give up past the limit."""
        flights = list(self._flights.values())
        self._flights.clear()
        self._refused.clear()  # their units were in flight too: put back below
        suspect = next(
            (f.assignment.unit.model_id for f in flights if f.assignment.worker_id == lost.worker_id), None
        )
        units = [
            f"{u.kind.value} {u.model_id} epoch {u.epoch} partition {u.partition}"
            for u in (f.assignment.unit for f in flights)
        ]
        self.losses.append(
            {
                "worker_id": lost.worker_id,
                "reason": lost.reason,
                "suspect": suspect,
                "units_put_back": units,
                "at": time.time(),
            }
        )
        strikes = Counter(loss["suspect"] for loss in self.losses if loss["suspect"] is not None)
        culprit = suspect if suspect is not None and strikes[suspect] >= CULPRIT_LOSSES else None
        if culprit is not None:
            logger.error(
                "model %s was running on the lost worker %d for the %d. time: it fails, alone",
                culprit,
                lost.worker_id,
                strikes[culprit],
            )
        put_back([flight.assignment for flight in flights], culprit, lost)
        limit = self.backend.max_restarts
        charged = [
            loss for loss in self.losses if strikes[loss["suspect"]] < CULPRIT_LOSSES
        ]  # not a culprit's
        if len(charged) > limit:
            tail = lost.log_tail.strip()
            raise BackendError(
                f"Worker {lost.worker_id} was lost ({lost.reason}) after the workers had been relaunched "
                f"{limit} times (max_restarts={limit}); giving up. {lost}"
                + (f"\nLast words of the worker:\n{tail}" if tail else "")
            ) from lost
        logger.warning(
            "worker %d lost (%s): relaunching the workers (%d of at most %d); %d units in flight put back: %s",
            lost.worker_id,
            lost.reason,
            len(self.losses),
            limit,
            len(units),
            units,
        )

    def _new_task_id(self) -> int:
        self._task_ids += 1
        return self._task_ids


def _describe_setup(setup: dict[str, Any]) -> str:
    """One line for the log: ``pid 123, TensorFlow 2.21.0 on CPU, 1 thread(s)``."""
    parts = [f"pid {setup['pid']}"] if "pid" in setup else []
    for library, label in (
        ("tensorflow", "TensorFlow"),
        ("jax", "Keras on JAX"),
        ("torch", "Keras on PyTorch"),
    ):
        if library in setup:
            parts.append(f"{label} {setup[library]} on {setup.get('device', '?')}")
    if "intra_op_threads" in setup:
        parts.append(f"{setup['intra_op_threads']} thread(s)")
    return ", ".join(parts) or repr(setup)
