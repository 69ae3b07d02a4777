"""The MOP training loop on the driver: scheduler <-> backend <-> Store.

The scheduler decides which (model, partition) unit runs on which worker; the backend runs it;
the driver records every completed unit (``journal.jsonl``), closes epochs (row-weighted
metrics, ``history.jsonl``), asks the search algorithm what to do after each epoch (continue,
stop, add models), and keeps the checkpoints that matter (latest and best epoch). It imports
neither Spark nor Keras: models arrive as :class:`ModelSpec` values from ``model_factory`` and
tasks are dotted paths.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any

import cerebro_spark.driver.resume as resuming
from cerebro_spark.backend.base import Backend, TaskRequest, TaskResult, WorkerLostError
from cerebro_spark.data.spec import DatasetSpec
from cerebro_spark.driver.background_store import BackgroundStore
from cerebro_spark.driver.control import (
    AddModels,
    Command,
    Interrupt,
    ResumeModel,
    SearchControl,
    StopModel,
    check_epochs,
    command_from_dict,
    command_to_dict,
)
from cerebro_spark.driver.records import EpochRecord, ModelRecord, SearchResult, UnitRecord, weighted_means
from cerebro_spark.driver.states import StateCache
from cerebro_spark.errors import (
    BackendError,
    InvalidParamError,
    SchedulerError,
    TaskFailedError,
    TrainingError,
)
from cerebro_spark.scheduler import Assignment, EpochEnd, MopScheduler, Unit, UnitKind
from cerebro_spark.search import Decision, SearchAlgorithm, Trial, is_better
from cerebro_spark.store import layout
from cerebro_spark.store.base import Store
from cerebro_spark.training.model_spec import ModelSpec

logger = logging.getLogger(__name__)

#: Models the user adds to a running search are named ``u0000``, ``u0001``... (the algorithms' are ``m...``).
USER_MODEL_PREFIX = "u"


@dataclass(frozen=True, slots=True)
class TaskNames:
    """Dotted paths of the worker tasks (tests swap in fakes that need no TensorFlow)."""

    setup: str = "cerebro_spark.training.trainer:setup_worker"
    train: str = "cerebro_spark.training.trainer:train_sub_epoch"
    evaluate: str = "cerebro_spark.training.trainer:evaluate"


@dataclass(frozen=True, slots=True)
class RunSettings:
    """How one search runs. ``metric`` is a history name such as ``val_loss``; ``mode`` min or max."""

    run_id: str
    metric: str
    mode: str
    seed: int
    deterministic: bool = False
    fixed_order: bool = True
    result_timeout_s: float = 24 * 3600.0  # units may take hours on big partitions


class DriverCallback:
    """Hooks called on the driver as the search goes (progress displays, TensorBoard, tests)."""

    def on_unit_end(self, unit: UnitRecord) -> None:
        """A unit completed."""

    def on_epoch_end(self, record: EpochRecord) -> None:
        """A model finished an epoch (training and validation)."""


@dataclass
class _Flight:
    assignment: Assignment
    submitted_at: float


@dataclass
class _EpochParts:
    train: list[tuple[dict[str, float], int]] = field(default_factory=list)
    val: list[tuple[dict[str, float], int]] = field(default_factory=list)
    train_seconds: float = 0.0


class MopDriver:
    """Runs one search with Model Hopper Parallelism. Call :meth:`run` once."""

    def __init__(
        self,
        backend: Backend,
        store: Store,
        dataset: DatasetSpec,
        search: SearchAlgorithm,
        model_factory: Callable[[Trial], ModelSpec],
        settings: RunSettings,
        *,
        tasks: TaskNames = TaskNames(),
        callbacks: Sequence[DriverCallback] = (),
        control: SearchControl | None = None,
    ) -> None:
        self.backend = backend
        self.store = BackgroundStore(store)  # checkpoints, journal and histories: in order, off the loop
        self.states = StateCache()  # the models' latest states, handed to their next units
        self.dataset = dataset
        self.search = search
        self.model_factory = model_factory
        self.settings = settings
        self.tasks = tasks
        self.callbacks = list(callbacks)
        self.scheduler = MopScheduler(
            backend.num_workers,
            seed=settings.seed,
            fixed_order=settings.fixed_order,
            evaluate=dataset.has_validation,
        )
        self.models: dict[str, ModelRecord] = {}
        self.specs: dict[str, ModelSpec] = {}
        self.units: list[UnitRecord] = []
        self._flights: dict[int, _Flight] = {}
        self._parts: dict[str, _EpochParts] = {}
        self._live_versions: dict[str, set[int]] = {}
        self._failing: set[str] = set()
        self._paused: set[str] = set()
        self._task_ids = 0
        self.worker_losses: list[dict[str, Any]] = []  # one entry per relaunch of the workers
        # resume and live control (see resume.py and control.py)
        self.control = control
        self._algorithm_config = search.state()  # the algorithm's settings, before any epoch
        self._left: set[str] = set()  # models the search algorithm no longer decides for
        self._targets: dict[str, int] = {}  # epochs the user asked for, for models the user took over
        self._pending: list[tuple[Command, Future[Any]]] = []  # stops waiting for units in flight
        self._started = time.time()
        self._previous_wall = 0.0  # search time of the sessions before a resume
        if dataset.num_partitions != backend.num_workers:
            raise SchedulerError(
                f"The prepared data has {dataset.num_partitions} training partitions but the backend has "
                f"{backend.num_workers} workers; MOP needs one partition per worker."
            )

    # ---- the loop --------------------------------------------------------------------------------

    def run(self, initial_trials: Sequence[Trial] | None = None, *, resume: bool = False) -> SearchResult:
        """Train every model of the search; returns when no model is left to train.

        ``initial_trials`` defaults to ``search.initial_trials()`` (pass them when the caller already
        asked the algorithm, to build and check models before any Spark job). With ``resume=True``
        and a run of this run id in the Store, the run goes on where it stopped (see
        :mod:`cerebro_spark.driver.resume`); its settings must be the same.
        """
        started = self._started = time.time()
        log = resuming.load_run(self.store, self.settings.run_id) if resume else None
        trials = self.search.initial_trials() if initial_trials is None else initial_trials
        for trial in trials:
            self._add_model(trial)  # build every initial model before any Spark job
        if log is not None:
            self._restore(log)
        self._write_run_record("running", started)
        status = "failed"
        try:
            self._drain_commands()  # commands sent before the start (continue_training sends some)
            if self.scheduler.is_finished():  # a finished run, resumed: nothing (more) to train
                status = "completed"
                return self._result(0.0)
            self.backend.set_description(
                f"cerebro_spark run {self.settings.run_id}: {len(self.models)} models hopping on "
                f"{self.backend.num_workers} workers"
            )
            self._start_workers()
            started = time.time()  # the search itself, without the workers' start-up
            self._started = started
            while not self.scheduler.is_finished():
                self._dispatch()
                result = self._next_result()
                if result is not None:  # None: workers were lost and relaunched
                    self._on_result(result)
                self._drain_commands()
            status = "completed"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            self.backend.shutdown()
            self._write_run_record(status, started)
            self._close_store(status)
            if self.control is not None:
                self.control.close("finished" if status == "completed" else status, self._snapshot())
        return self._result(time.time() - started)

    def _close_store(self, status: str) -> None:
        """Wait for the queued Store writes; a failed one fails a completed run (else it is logged)."""
        try:
            self.store.close()
        except Exception as err:
            if status == "completed":
                raise
            logger.warning("run %s: a Store write failed while the run ended: %s", self.settings.run_id, err)

    def _setup_workers(self) -> None:
        kwargs = {"seed": self.settings.seed, "deterministic": self.settings.deterministic}
        for worker in range(self.backend.num_workers):
            self.backend.submit(worker, TaskRequest(self._new_task_id(), self.tasks.setup, kwargs))
        for _ in range(self.backend.num_workers):
            result = self._wait_result()
            if not result.ok:
                raise TaskFailedError(
                    f"Worker {result.worker_id} failed to set up: {result.error}\n{result.traceback}",
                    worker_id=result.worker_id,
                    remote_traceback=result.traceback,
                )
            logger.debug("worker %d ready: %s", result.worker_id, result.value)

    def _dispatch(self) -> None:
        busy = {flight.assignment.worker_id for flight in self._flights.values()}
        idle = [w for w in range(self.backend.num_workers) if w not in busy]
        for assignment in self.scheduler.next_assignments(idle):
            if assignment.unit.model_id in self._failing:  # its other units are still out: wait for them
                self.scheduler.put_back(assignment)
                continue
            task_id = self._new_task_id()
            self._flights[task_id] = _Flight(assignment, time.time())
            self.backend.submit(assignment.worker_id, self._request(task_id, assignment))
        if not self._flights and not self.scheduler.is_finished() and self._paused:
            raise TrainingError(
                f"The search algorithm left models {sorted(self._paused)} paused with nothing else to run."
            )
        if not self._flights and not self.scheduler.is_finished():
            raise SchedulerError(
                f"No unit can run but the search is not finished (active models: "
                f"{self.scheduler.active_models}). This is a bug in cerebro_spark."
            )

    def _request(self, task_id: int, a: Assignment) -> TaskRequest:
        unit, spec = a.unit, self.specs[a.unit.model_id]
        common = {"store": self.store, "dataset": self.dataset, "model": spec, "partition": unit.partition}
        version = self.models[unit.model_id].version
        state = self.states.get(unit.model_id, version)
        if state is None:  # the worker reads the checkpoint: it must be durable
            self.store.flush()
        common["state"] = state
        if unit.kind is UnitKind.TRAIN:
            kwargs = {**common, "epoch": unit.epoch, "from_version": version, "seed": self.settings.seed}
            return TaskRequest(task_id, self.tasks.train, kwargs)
        return TaskRequest(task_id, self.tasks.evaluate, {**common, "version": version})

    def _next_result(self) -> TaskResult | None:
        """The next result, or None after the workers were lost (units put back) and relaunched."""
        try:
            return self._wait_result()
        except WorkerLostError as lost:
            self._start_workers(lost)
            return None

    def _wait_result(self) -> TaskResult:
        result = self.backend.next_result(timeout=self.settings.result_timeout_s)
        if result is None:
            raise BackendError(
                f"No worker reported for {self.settings.result_timeout_s:.0f}s "
                f"(units in flight: {[f.assignment.unit for f in self._flights.values()]})."
            )
        return result

    # ---- lost workers ------------------------------------------------------------------------------

    def _start_workers(self, lost: WorkerLostError | None = None) -> None:
        """Start the workers and set them up; after ``lost``, relaunch them (bounded by the backend's
        ``max_restarts``): the units in flight are put back and run again, nothing else is retrained."""
        while True:
            if lost is None:
                self.backend.start()
            else:
                self._on_workers_lost(lost)
                self.backend.restart()
            try:
                self._setup_workers()
                return
            except WorkerLostError as again:
                lost = again

    def _on_workers_lost(self, lost: WorkerLostError) -> None:
        """Put back every unit in flight (a lost barrier stage loses them all); give up past the limit."""
        flights = list(self._flights.values())
        self._flights.clear()
        for flight in flights:
            self.scheduler.put_back(flight.assignment)
        for model_id in sorted(self._failing):  # its failing unit came back already: now it fails
            self._failing.discard(model_id)
            self.scheduler.stop_model(model_id)
            model = self.models[model_id]
            model.status = "failed"
            model.reason = model.reason or (model.error.splitlines() or [""])[0]
            self._apply_to_others(self.search.on_model_failed(model_id, model.error))
        units = [f"{f.assignment.unit.kind.value} {f.assignment.unit.model_id} epoch {f.assignment.unit.epoch} "
                 f"partition {f.assignment.unit.partition}" for f in flights]  # fmt: skip
        self.worker_losses.append(
            {"worker_id": lost.worker_id, "reason": lost.reason, "units_put_back": units, "at": time.time()}
        )
        limit = self.backend.max_restarts
        if len(self.worker_losses) > limit:
            tail = lost.log_tail.strip()
            raise BackendError(
                f"Worker {lost.worker_id} was lost ({lost.reason}) after the workers had been relaunched "
                f"{limit} times (max_restarts={limit}); giving up. {lost}"
                + (f"\nLast words of the worker:\n{tail}" if tail else "")
            ) from lost
        logger.warning(
            "worker %d lost (%s): relaunching the workers (%d of at most %d); %d units in flight put back: %s",
            lost.worker_id, lost.reason, len(self.worker_losses), limit, len(units), units,
        )  # fmt: skip

    # ---- results -----------------------------------------------------------------------------------

    def _on_result(self, result: TaskResult) -> None:
        flight = self._flights.pop(result.task_id, None)
        if flight is None:
            logger.warning(
                "ignoring a result for unknown task %d from worker %d", result.task_id, result.worker_id
            )
            return
        a, model_id = flight.assignment, flight.assignment.unit.model_id
        if not result.ok or model_id in self._failing:
            self._on_failure(a, result)
            return
        loss = result.value["metrics"].get("loss")
        if loss is not None and not math.isfinite(loss):  # diverged: the model fails, the others go on
            error = (
                f"The loss became {loss} ({a.unit.kind.value} unit, epoch {a.unit.epoch}, partition "
                f"{a.unit.partition}): the model diverged. Lower its learning rate or clip its gradients."
            )
            self._on_failure(a, replace(result, ok=False, error=error))
            return
        value = dict(result.value)
        record = self.models[model_id]
        if a.unit.kind is UnitKind.TRAIN:
            record.version = int(value["version"])
            state = value.pop("state", None)
            if state is not None:  # durable before the unit is journaled (the writes keep their order)
                self.store.write_bytes(
                    layout.checkpoint_key(self.settings.run_id, model_id, record.version), state
                )
                self.states.put(model_id, record.version, state)
            self._live_versions.setdefault(model_id, set()).add(record.version)
            parts = self._parts.setdefault(model_id, _EpochParts())
            parts.train.append((value["metrics"], value["rows"]))
            parts.train_seconds += result.finished_at - result.started_at
        else:
            self._parts.setdefault(model_id, _EpochParts()).val.append((value["metrics"], value["rows"]))
        unit = UnitRecord(
            model_id, a.unit.epoch, a.unit.partition, a.unit.kind.value, a.worker_id, record.version,
            int(value["rows"]), dict(value["metrics"]), dict(value.get("timings", {})),
            flight.submitted_at, result.started_at, result.finished_at, time.time(),
        )  # fmt: skip
        self.units.append(unit)
        self.store.append_text(layout.journal_key(self.settings.run_id), json.dumps(unit.to_dict()) + "\n")
        for callback in self.callbacks:
            callback.on_unit_end(unit)
        end = self.scheduler.complete(a)
        if end is not None:
            self._on_epoch_end(end)

    def _on_epoch_end(self, end: EpochEnd) -> None:
        model = self.models[end.model_id]
        parts = self._parts.pop(end.model_id, _EpochParts())
        metrics = weighted_means(parts.train)
        metrics.update({f"val_{k}": v for k, v in weighted_means(parts.val).items()})
        record = EpochRecord(
            end.model_id, end.epoch, metrics, model.version,
            sum(r for _, r in parts.train), sum(r for _, r in parts.val), parts.train_seconds, time.time(),
        )  # fmt: skip
        model.history.append(record)
        self.store.append_text(
            layout.history_key(self.settings.run_id, end.model_id), json.dumps(record.to_dict()) + "\n"
        )
        self._update_best(model, record)
        for callback in self.callbacks:
            callback.on_epoch_end(record)
        logger.info("model %s epoch %d: %s", end.model_id, end.epoch, _format_metrics(metrics))
        decision = self._decide(end.model_id, end.epoch, metrics)
        if decision.stop:
            self._stop(end.model_id, decision.reason, completed=end.epoch >= self._max_epochs(end.model_id))
        elif decision.pause:
            self._paused.add(end.model_id)
            model.status = "paused"
        else:
            self.scheduler.continue_model(end.model_id)
        self._apply_to_others(decision)

    def _apply_to_others(self, decision: Decision) -> None:
        """Resume or stop paused models, and start new trials, as the search algorithm decided."""
        if self._left:  # models the user took over (or stopped) are no longer the algorithm's
            decision = replace(
                decision,
                resume=tuple(m for m in decision.resume if m not in self._left),
                stop_paused=tuple(m for m in decision.stop_paused if m not in self._left),
            )
        for model_id in (*decision.resume, *decision.stop_paused):
            if model_id not in self._paused:
                raise SchedulerError(
                    f"The search algorithm resumed or stopped model {model_id!r}, which is not paused "
                    f"(paused: {sorted(self._paused)}). This is a bug in the search algorithm."
                )
        for model_id in decision.resume:
            self._paused.discard(model_id)
            self.models[model_id].status = "running"
            self.scheduler.continue_model(model_id)
        for model_id in decision.stop_paused:
            self._paused.discard(model_id)
            self._stop(model_id, decision.reason_for_paused(model_id), completed=False)
        for trial in decision.new_trials:
            self._add_model(trial)

    def _stop(self, model_id: str, reason: str, *, completed: bool) -> None:
        self.scheduler.stop_model(model_id)
        model = self.models[model_id]
        model.status, model.reason = ("completed" if completed else "stopped"), reason

    def _update_best(self, model: ModelRecord, record: EpochRecord) -> None:
        metric = self.settings.metric
        if metric not in record.metrics:
            raise TrainingError(
                f"The evaluation metric {metric!r} is not among the metrics of model {model.model_id!r}: "
                f"{sorted(record.metrics)}. Pass one of those as the evaluation metric."
            )
        best = None if model.best_epoch is None else model.history[model.best_epoch - 1].metrics[metric]
        if is_better(record.metrics[metric], best, self.settings.mode):
            model.best_epoch, model.best_version = record.epoch, record.version
        self._collect_checkpoints(model)

    def _collect_checkpoints(self, model: ModelRecord) -> None:
        """Delete checkpoints that are neither the latest nor the best epoch's."""
        keep = {model.version, model.best_version}
        live = self._live_versions.setdefault(model.model_id, set())
        for version in sorted(live - keep):
            self.store.delete(layout.checkpoint_key(self.settings.run_id, model.model_id, version))
            live.discard(version)

    def _on_failure(self, a: Assignment, result: TaskResult) -> None:
        """A unit failed: the model is marked failed with its error; the others go on."""
        model_id = a.unit.model_id
        self.scheduler.put_back(a)
        model = self.models[model_id]
        if not result.ok and not model.error:
            model.error = f"{result.error}\n{result.traceback}".strip()
            logger.error(
                "model %s failed on worker %d (%s unit, epoch %d, partition %d): %s\n%s",
                model_id, a.worker_id, a.unit.kind.value, a.unit.epoch, a.unit.partition, result.error,
                result.traceback,
            )  # fmt: skip
        self._failing.add(model_id)
        if not any(f.assignment.unit.model_id == model_id for f in self._flights.values()):
            self.scheduler.stop_model(model_id)
            self._failing.discard(model_id)
            model.status, model.reason = "failed", result.error or model.reason
            self._log_event(
                {"event": "failed", "model_id": model_id, "reason": model.reason, "error": model.error}
            )
            if model_id not in self._left:
                self._apply_to_others(self.search.on_model_failed(model_id, model.error))

    # ---- resume (see resume.py) -------------------------------------------------------------------

    def _run_header(self) -> dict[str, Any]:
        """The settings a resumed run must share with the run it continues."""
        return {
            "seed": self.settings.seed,
            "metric": self.settings.metric,
            "mode": self.settings.mode,
            "deterministic": self.settings.deterministic,
            "fixed_order": self.settings.fixed_order,
            "num_workers": self.backend.num_workers,
            "dataset": {"fingerprint": self.dataset.fingerprint, "root": self.dataset.root},
            "algorithm_config": self._algorithm_config,
        }

    def _restore(self, log: resuming.RunLog) -> None:
        """Replay the run's journal and events: the scheduler, the algorithm and the records end in
        the state the run had when it stopped; nothing runs and nothing is written meanwhile."""
        resuming.check_resumable(log, self._run_header())
        events = log.events_at()
        with resuming.replaying(self):
            for position, unit in enumerate(log.units):
                for event in events.pop(position, []):
                    self._replay_event(log, event)
                self._replay_unit(log, unit)
            for event in events.pop(len(log.units), []):
                self._replay_event(log, event)
        if events:
            raise resuming.mismatch(log, f"events after the end of the journal: {events}")
        for model_id, model in self.models.items():
            resuming.check_params(log, model_id, {k: _jsonable(v) for k, v in model.params.items()})
            self._restore_history(log, model)
        self._previous_wall = float(log.record.get("wall_seconds", 0.0))
        logger.info(
            "run %s resumed: %d units and %d events replayed; %d models active",
            self.settings.run_id, len(log.units), len(log.events), len(self.scheduler.active_models),
        )  # fmt: skip

    def _replay_unit(self, log: resuming.RunLog, record: UnitRecord) -> None:
        """Hand out the journal's unit as the scheduler would, and take its recorded result."""
        unit = Unit(record.model_id, record.epoch, record.partition, UnitKind(record.kind))
        if record.model_id not in self.models or unit not in self.scheduler.runnable_units(record.partition):
            raise resuming.mismatch(log, f"its unit {unit} is not runnable after {len(self.units)} units")
        assignment = self.scheduler.assign(record.partition, unit)
        task_id = self._new_task_id()
        self._flights[task_id] = _Flight(assignment, record.submitted_at)
        value = {"version": record.version, "metrics": record.metrics, "rows": record.rows,
                 "timings": record.timings}  # fmt: skip
        self._on_result(
            TaskResult(task_id, record.worker_id, True, value, "", "", record.started_at, record.finished_at)
        )
        self.units[-1] = record  # with its original times

    def _replay_event(self, log: resuming.RunLog, event: dict[str, Any]) -> None:
        model_id = event.get("model_id", "")
        if event["event"] == "failed":
            if model_id not in self.scheduler.active_models:
                raise resuming.mismatch(log, f"model {model_id!r} failed but it is not active")
            self.scheduler.stop_model(model_id)
            self._paused.discard(model_id)
            model = self.models[model_id]
            model.status, model.reason, model.error = "failed", event["reason"], event["error"]
            if model_id not in self._left:
                self._apply_to_others(self.search.on_model_failed(model_id, model.error))
        elif event["event"] == "command":
            self._apply_command(command_from_dict(event["command"]))
        else:
            raise resuming.mismatch(log, f"unknown event {event!r}")

    def _restore_history(self, log: resuming.RunLog, model: ModelRecord) -> None:
        """Keep the stored history lines (their times); append the epochs a crash kept out of it."""
        key = layout.history_key(self.settings.run_id, model.model_id)
        stored = [EpochRecord(**line) for line in resuming.read_jsonl(self.store, key)]
        if [r.epoch for r in stored] != [r.epoch for r in model.history[: len(stored)]]:
            raise resuming.mismatch(
                log, f"model {model.model_id!r} has epochs {[r.epoch for r in stored]} in its history"
            )
        model.history[: len(stored)] = stored
        for record in model.history[len(stored) :]:
            self.store.append_text(key, json.dumps(record.to_dict()) + "\n")

    def _log_event(self, event: dict[str, Any]) -> None:
        """Record what changed the search between units, for a resume to replay at the same point."""
        resuming.append_event(self.store, self.settings.run_id, {**event, "at_unit": len(self.units)})

    # ---- live control (see control.py) -------------------------------------------------------------

    def _drain_commands(self) -> None:
        """Apply the user's commands (a stop waits until the model has no unit in flight)."""
        if self.control is None:
            return
        interrupt = False
        pending, self._pending = [*self._pending, *self.control.drain()], []
        for command, future in pending:
            if isinstance(command, StopModel) and self._in_flight(command.model_id):
                self._pending.append((command, future))
                continue
            try:
                value = self._apply_command(command)
            except Exception as err:  # noqa: BLE001 - the user's thread gets it; the search goes on
                logger.warning("command %s failed: %s", command, err)
                future.set_exception(err)
                continue
            future.set_result(value)
            interrupt = interrupt or isinstance(command, Interrupt)
        self.control.publish(self._snapshot())
        if interrupt:
            raise KeyboardInterrupt(f"run {self.settings.run_id} interrupted through its SearchControl")

    def _apply_command(self, command: Command) -> Any:
        """Apply ``command`` and record it; returns what the user's future gets."""
        value: Any = None
        if isinstance(command, StopModel):
            self._stop_by_user(command.model_id, command.reason)
        elif isinstance(command, ResumeModel):
            self._resume_by_user(command.model_id, check_epochs(command.epochs))
        elif isinstance(command, AddModels):
            command = replace(
                command, model_ids=command.model_ids or self._user_model_ids(len(command.params))
            )
            value = self._add_by_user(command)
        if not isinstance(command, Interrupt):
            self._log_event({"event": "command", "command": command_to_dict(command)})
        return value

    def _known(self, model_id: str, verb: str) -> ModelRecord:
        if model_id not in self.models:
            raise InvalidParamError(
                f"Cannot {verb} model {model_id!r}: no such model in run {self.settings.run_id!r}. "
                f"Models: {list(self.models)}."
            )
        return self.models[model_id]

    def _stop_by_user(self, model_id: str, reason: str) -> None:
        """Stop a running or paused model now; an epoch it had not finished is dropped (its version
        goes back to its last epoch's), so a later resume trains that epoch whole."""
        model = self._known(model_id, "stop")
        if model_id not in self.scheduler.active_models:
            raise InvalidParamError(
                f"Cannot stop model {model_id!r}: it is not running or paused. Received a stop for a "
                f"model that is {model.status!r}."
            )
        self.scheduler.stop_model(model_id)
        self._paused.discard(model_id)
        self._parts.pop(model_id, None)
        model.version = model.history[-1].version if model.history else 0
        model.status, model.reason = "stopped", reason
        self._collect_checkpoints(model)
        self._leave_algorithm(model_id, reason)

    def _resume_by_user(self, model_id: str, epochs: int | None) -> None:
        """Train a stopped, completed or paused model on to ``epochs`` epochs, under the user's control."""
        model = self._known(model_id, "resume")
        paused = model_id in self._paused
        if model.status == "failed" or (model_id in self.scheduler.active_models and not paused):
            raise InvalidParamError(
                f"Cannot resume model {model_id!r}: only a stopped, completed or paused model can be "
                f"resumed. Received a resume for a model that is {model.status!r}."
            )
        target = self._max_epochs(model_id) if epochs is None else epochs
        if target <= model.epochs:
            raise InvalidParamError(
                f"Cannot resume model {model_id!r} to {target} epochs: it has trained {model.epochs} "
                f"already. Pass epochs= greater than {model.epochs}."
            )
        if paused:
            self._paused.discard(model_id)
            self._leave_algorithm(model_id, "taken over by the user")
            self.scheduler.continue_model(model_id)
        else:
            self._left.add(model_id)  # the algorithm had ended it
            self.scheduler.add_model(model_id, next_epoch=model.epochs + 1)
        self._targets[model_id] = target
        model.status, model.reason = "running", ""

    def _add_by_user(self, command: AddModels) -> list[str]:
        if not command.params or len(command.model_ids) != len(command.params):
            raise InvalidParamError(
                f"add_models needs at least one configuration. Received: {command.params!r}"
            )
        target = check_epochs(command.epochs) or self.search.num_epochs
        for model_id, params in zip(command.model_ids, command.params, strict=True):
            if model_id in self.models:
                raise InvalidParamError(f"Cannot add model {model_id!r}: a model with this id exists.")
            self._add_model(Trial(model_id, dict(params)))
            self._left.add(model_id)
            self._targets[model_id] = target
        return list(command.model_ids)

    def _user_model_ids(self, count: int) -> tuple[str, ...]:
        start = sum(1 for m in self.models if m.startswith(USER_MODEL_PREFIX))
        return tuple(f"{USER_MODEL_PREFIX}{i:04d}" for i in range(start, start + count))

    def _leave_algorithm(self, model_id: str, reason: str) -> None:
        """Tell the search algorithm that ``model_id`` left it (once); apply what it decides."""
        if model_id in self._left:
            return
        self._left.add(model_id)
        self._apply_to_others(self.search.on_model_left(model_id, reason))

    def _decide(self, model_id: str, epoch: int, metrics: dict[str, float]) -> Decision:
        """The search algorithm decides after an epoch, or the user's target for a model taken over."""
        target = self._targets.get(model_id)
        if target is None:
            return self.search.on_epoch_end(model_id, epoch, metrics)
        return Decision(stop=True, reason=f"completed {target} epochs") if epoch >= target else Decision()

    def _max_epochs(self, model_id: str) -> int:
        target = self._targets.get(model_id)
        return self.search.max_epochs(model_id) if target is None else target

    def _in_flight(self, model_id: str) -> bool:
        return any(f.assignment.unit.model_id == model_id for f in self._flights.values())

    def _snapshot(self) -> SearchResult:
        """The records as another thread may read them while the search goes on: each model record is
        a copy; its history and the units are the driver's own lists, which only grow (O(models) a step)."""
        models = {m: replace(r) for m, r in self.models.items()}
        return SearchResult(
            self.settings.run_id, self.settings.metric, self.settings.mode, self.backend.num_workers,
            models, self.units, self._previous_wall + time.time() - self._started, self._best_model_id(),
        )  # fmt: skip

    # ---- bookkeeping -------------------------------------------------------------------------------

    def _add_model(self, trial: Trial) -> None:
        spec = self.model_factory(trial)
        self.specs[trial.model_id] = spec
        self.models[trial.model_id] = ModelRecord(trial.model_id, dict(trial.params))
        self._live_versions[trial.model_id] = {0}
        self.scheduler.add_model(trial.model_id)

    def _new_task_id(self) -> int:
        self._task_ids += 1
        return self._task_ids

    def _best_model_id(self) -> str | None:
        best_id, best_value = None, None
        for model in self.models.values():  # insertion order: ties go to the earlier model
            if model.best_epoch is None:
                continue
            value = model.history[model.best_epoch - 1].metrics[self.settings.metric]
            if is_better(value, best_value, self.settings.mode):
                best_id, best_value = model.model_id, value
        return best_id

    def _result(self, wall_seconds: float) -> SearchResult:
        wall_seconds += self._previous_wall
        failed = [m for m in self.models.values() if m.status == "failed"]
        if self.models and len(failed) == len(self.models):
            reasons = "\n".join(
                f"- {m.model_id} {m.params}: {m.error.splitlines()[0] if m.error else ''}" for m in failed
            )
            raise TrainingError(f"Every model of the search failed:\n{reasons}")
        return SearchResult(
            self.settings.run_id, self.settings.metric, self.settings.mode, self.backend.num_workers,
            dict(self.models), list(self.units), wall_seconds, self._best_model_id(),
        )  # fmt: skip

    def _write_run_record(self, status: str, started: float) -> None:
        record = {
            "run_id": self.settings.run_id,
            "status": status,
            "seed": self.settings.seed,
            "metric": self.settings.metric,
            "mode": self.settings.mode,
            "deterministic": self.settings.deterministic,
            "fixed_order": self.settings.fixed_order,
            "algorithm": self.search.state(),
            "algorithm_config": self._algorithm_config,
            "num_workers": self.backend.num_workers,
            "wall_seconds": self._previous_wall + (time.time() - started if status != "running" else 0.0),
            "dataset": {"fingerprint": self.dataset.fingerprint, "root": self.dataset.root},
            "backend": self.backend.describe(),
            "started_at": started,
            "updated_at": time.time(),
            "best_model_id": self._best_model_id(),
            "worker_losses": self.worker_losses,
            "models": {
                m.model_id: {
                    "params": {k: _jsonable(v) for k, v in m.params.items()},
                    "status": m.status,
                    "reason": m.reason,
                    "epochs": m.epochs,
                    "best_epoch": m.best_epoch,
                    "best_version": m.best_version,
                    "version": m.version,
                }  # fmt: skip
                for m in self.models.values()
            },
        }
        self.store.write_json(layout.run_record_key(self.settings.run_id), record)


def _format_metrics(metrics: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items()))


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):  # a nested search space's value
        return {str(k): _jsonable(v) for k, v in value.items()}
    return repr(value)
