"""The MOP training loop on the driver: scheduler <-> backend <-> Store.

The scheduler decides which (model, partition) unit runs on which worker; the backend runs it;
the driver takes each result: the :class:`~cerebro_spark.driver.book.ModelBook` moves the models
(epoch closed, row-weighted metrics, the search algorithm's decision: continue, pause, stop, add
models), the :class:`~cerebro_spark.driver.run_record.RunRecorder` writes what the run records
(journal, histories, the latest and best checkpoints kept), the user's live commands apply
(:mod:`~cerebro_spark.driver.commands`). A resume replays the run first
(:mod:`~cerebro_spark.driver.resume`). It imports neither Spark nor Keras: models arrive as
:class:`ModelSpec` values from ``model_factory`` and tasks are dotted paths.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import cerebro_spark.driver.resume as resuming
from cerebro_spark.backend.base import Backend, TaskRequest, TaskResult, WorkerLostError
from cerebro_spark.data.spec import DatasetSpec
from cerebro_spark.driver.background_store import BackgroundStore
from cerebro_spark.driver.book import PAUSED, RUNNING, ModelBook
from cerebro_spark.driver.commands import LiveCommands
from cerebro_spark.driver.control import SearchControl
from cerebro_spark.driver.lease import RunLease
from cerebro_spark.driver.records import ModelRecord, SearchResult, UnitRecord
from cerebro_spark.driver.run_record import RunRecorder, check_not_all_failed
from cerebro_spark.driver.settings import USER_MODEL_PREFIX, DriverCallback, RunSettings, TaskNames
from cerebro_spark.driver.states import StateCache
from cerebro_spark.driver.workers import CULPRIT_LOSSES, Workers
from cerebro_spark.errors import SchedulerError, TrainingError
from cerebro_spark.scheduler import Assignment, EpochEnd, MopScheduler, UnitKind
from cerebro_spark.search import SearchAlgorithm, Trial
from cerebro_spark.store import layout
from cerebro_spark.store.base import Store
from cerebro_spark.training.model_spec import ModelSpec

__all__ = ["USER_MODEL_PREFIX", "DriverCallback", "MopDriver", "RunSettings", "TaskNames"]

logger = logging.getLogger(__name__)

_DEFAULT_TASKS = TaskNames()


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
        tasks: TaskNames = _DEFAULT_TASKS,
        callbacks: Sequence[DriverCallback] = (),
        control: SearchControl | None = None,
    ) -> None:
        self.backend = backend
        self.store = BackgroundStore(store)  # checkpoints, journal, histories: in order, off the loop
        self.states = StateCache()  # each model's latest state, handed to its next unit
        self.dataset = dataset
        self.search = search
        self.model_factory = model_factory
        self.settings = settings
        self.tasks = tasks
        self.control = control
        self.scheduler = MopScheduler(
            backend.num_workers,
            seed=settings.seed,
            fixed_order=settings.fixed_order,
            evaluate=dataset.has_validation,
        )
        self.book = ModelBook(
            self.scheduler, search, model_factory, metric=settings.metric, mode=settings.mode
        )
        self.recorder = RunRecorder(
            self.store, settings, callbacks, dataset=dataset, backend=backend, search=search
        )
        self.commands = LiveCommands(control, self.book, self.recorder)
        self.callbacks = self.recorder.callbacks
        self.workers = Workers(backend, settings, tasks.setup)
        self._started = time.time()
        self._previous_wall = 0.0  # search time of the sessions before a resume
        if dataset.num_partitions != backend.num_workers:
            raise SchedulerError(
                f"The prepared data has {dataset.num_partitions} training partitions but the backend has "
                f"{backend.num_workers} workers; MOP needs one partition per worker."
            )

    @property
    def models(self) -> dict[str, ModelRecord]:
        """Every model's record, in the order the models were added (the book's live dict)."""
        return self.book.models

    @property
    def specs(self) -> dict[str, ModelSpec]:
        """Every model's spec."""
        return self.book.specs

    @property
    def worker_losses(self) -> list[dict[str, Any]]:
        """One entry per relaunch of the workers (see :class:`~cerebro_spark.driver.workers.Workers`)."""
        return self.workers.losses

    @property
    def units(self) -> list[UnitRecord]:
        """The completed units, in completion order."""
        return self.recorder.units

    # ---- the loop --------------------------------------------------------------------------------

    def run(self, initial_trials: Sequence[Trial] | None = None, *, resume: bool = False) -> SearchResult:
        """Train every model of the search; returns when no model is left to train.

        ``initial_trials`` defaults to ``search.initial_trials()`` (pass them when the caller already
        asked the algorithm, to build and check models before any Spark job). With ``resume=True``
        and a run of this run id in the Store, the run goes on where it stopped (see
        :mod:`cerebro_spark.driver.resume`); its settings must be the same.
        """
        started = self._started = time.time()
        lease = RunLease(self.store.target, self.settings.run_id)
        lease.acquire()  # before anything of the run is read or written: one driver per run
        try:
            if removed := self.store.target.remove_temporary_files(layout.run_root(self.settings.run_id)):
                logger.info(
                    "run %s: removed %d files of writes a crash interrupted", self.settings.run_id, removed
                )
            return self._run(started, initial_trials, resume)
        finally:
            lease.release()

    def _run(self, started: float, initial_trials: Sequence[Trial] | None, resume: bool) -> SearchResult:
        log = resuming.load_run(self.store, self.settings.run_id) if resume else None
        trials = self.search.initial_trials() if initial_trials is None else initial_trials
        for trial in trials:
            self.book.add(trial)  # build every initial model before any Spark job
        if log is not None:
            self._previous_wall = resuming.restore(
                log, self.book, self.recorder, self.commands, self.workers.track, self._on_result
            )
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
            self.workers.start(self._put_back)
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
            self.recorder.close(status)
            if self.control is not None:
                self.control.close("finished" if status == "completed" else status, self._snapshot())
        return self._result(time.time() - started)

    def _dispatch(self) -> None:
        for assignment in self.scheduler.next_assignments(self.workers.idle()):
            if self.book.is_failing(assignment.unit.model_id):  # its other units are still out: wait
                self.scheduler.put_back(assignment)
                continue
            self.workers.submit(assignment, self._request)
        if not self.workers.busy() and not self.scheduler.is_finished():
            if paused := self.book.with_status(PAUSED):
                raise TrainingError(
                    f"The search algorithm left models {paused} paused with nothing else to run."
                )
            raise SchedulerError(
                f"No unit can run but the search is not finished (active models: "
                f"{self.scheduler.active_models}). This is a bug in cerebro_spark."
            )

    def _request(self, task_id: int, a: Assignment) -> TaskRequest:
        """The task that runs assignment ``a``: train the model on its partition, or evaluate it."""
        unit, spec = a.unit, self.specs[a.unit.model_id]
        version = self.models[unit.model_id].version
        state = self.states.get(unit.model_id, version)
        if state is None:  # the worker reads the checkpoint: it must be written by now
            self.store.flush()
        common = dict(store=self.store.target, dataset=self.dataset, model=spec, partition=unit.partition)
        common["state"] = state
        if unit.kind is UnitKind.TRAIN:
            kwargs = {**common, "epoch": unit.epoch, "from_version": version, "seed": self.settings.seed}
            return TaskRequest(task_id, self.tasks.train, kwargs)
        return TaskRequest(task_id, self.tasks.evaluate, {**common, "version": version})

    def _next_result(self) -> TaskResult | None:
        """The next result, or None after the workers were lost (units put back) and relaunched."""
        try:
            return self.workers.next_result()
        except WorkerLostError as lost:
            self.workers.start(self._put_back, lost)
            return None

    # ---- results ---------------------------------------------------------------------------------

    def _on_result(self, result: TaskResult) -> None:
        """A unit's result: journal it, and close the model's epoch if it was the epoch's last."""
        flight = self.workers.land(result.task_id)
        if flight is None:
            logger.warning(
                "ignoring a result for unknown task %d from worker %d", result.task_id, result.worker_id
            )
            return
        a, model_id = flight.assignment, flight.assignment.unit.model_id
        if not result.ok or self.book.is_failing(model_id):
            self._on_failure(a, result)
            return
        value = dict(result.value)
        state = value.pop("state", None)  # a training unit's new state: kept out of the records
        loss = value["metrics"].get("loss")
        if loss is not None and not math.isfinite(loss):  # diverged: the model fails, the others go on
            error = (
                f"The loss became {loss} ({a.unit.kind.value} unit, epoch {a.unit.epoch}, partition "
                f"{a.unit.partition}): the model diverged. Lower its learning rate or clip its gradients."
            )
            self._on_failure(a, replace(result, ok=False, error=error))
            return
        if a.unit.kind is UnitKind.TRAIN:
            if state is not None:  # the next unit gets it from memory; the Store keeps it durable
                self.recorder.checkpoint(model_id, int(value["version"]), state)
                self.states.put(model_id, int(value["version"]), state)
            else:  # the task wrote its checkpoint itself (a large state): the next unit reads it
                self.states.drop(model_id)
            seconds = result.finished_at - result.started_at
            self.book.take_train(model_id, int(value["version"]), value["metrics"], value["rows"], seconds)
        else:
            self.book.take_val(model_id, value["metrics"], value["rows"])
        self.recorder.unit(flight.unit_record(result, version=self.models[model_id].version))
        end = self.scheduler.complete(a)
        if end is not None:
            self._on_epoch_end(end)

    def _on_epoch_end(self, end: EpochEnd) -> None:
        """Record the epoch, keep the checkpoints that matter, and move the model as decided."""
        model_id = end.model_id
        record = self.book.close_epoch(model_id, end.epoch)
        self.recorder.history(record)
        self.book.update_best(model_id, record)
        self.recorder.delete_checkpoints(model_id, self.book.stale_versions(model_id))
        self.recorder.epoch_end(record)
        logger.info("model %s epoch %d: %s", model_id, end.epoch, _format_metrics(record.metrics))
        self.book.after_epoch(model_id, end.epoch, record.metrics)

    def _on_failure(self, a: Assignment, result: TaskResult) -> None:
        """A unit failed: the model fails (with its error) once its other units are back; the others go on."""
        model_id = a.unit.model_id
        self.scheduler.put_back(a)
        model = self.models[model_id]
        if not result.ok and not model.error:
            model.error = f"{result.error}\n{result.traceback}".strip()
            where = f"{a.unit.kind.value} unit, epoch {a.unit.epoch}, partition {a.unit.partition}"
            logger.error(
                "model %s failed on worker %d (%s): %s\n%s",
                model_id,
                a.worker_id,
                where,
                result.error,
                result.traceback,
            )
        self.book.mark_failing(model_id)
        if not self.workers.in_flight(model_id):
            self._fail(model_id, result.error or model.reason)

    def _put_back(
        self,
        assignments: Sequence[Assignment],
        culprit: str | None = None,
        lost: WorkerLostError | None = None,
    ) -> None:
        """The workers were lost: their units run again; a failing model (its failed unit is back) fails,
        and so does ``culprit``, the model that ``lost`` is blamed on (see :mod:`.workers`)."""
        for assignment in assignments:
            self.scheduler.put_back(assignment)
        reasons = {}
        if culprit is not None and lost is not None and self.book.status(culprit) in (RUNNING, PAUSED):
            model = self.models[culprit]
            model.error = (
                model.error or f"A worker was lost {CULPRIT_LOSSES} times running it. The last: {lost}"
            )
            reasons[culprit] = f"lost its worker {CULPRIT_LOSSES} times: {lost.reason}"
            self.book.mark_failing(culprit)
        for model_id in self.book.failing():
            error = self.models[model_id].error
            self._fail(model_id, reasons.get(model_id) or (error.splitlines() or [""])[0])

    def _fail(self, model_id: str, reason: str) -> None:
        """End a failing model: FAILED with ``reason``, the event journaled, the algorithm told."""
        error = self.models[model_id].error
        self.recorder.event({"event": "failed", "model_id": model_id, "reason": reason, "error": error})
        self.book.fail(model_id, reason)

    # ---- bookkeeping -----------------------------------------------------------------------------

    def _drain_commands(self) -> None:
        self.commands.drain(self.workers.in_flight, self._snapshot)

    def _snapshot(self) -> SearchResult:
        """The records as another thread may read them while the search goes on: each model record is
        a copy; its history and the units are the driver's own lists, which only grow (O(models) a step)."""
        models = {m: replace(r) for m, r in self.models.items()}
        wall = self._previous_wall + time.time() - self._started
        return self.recorder.search_result(models, self.units, wall, self.book.best_model_id())

    def _result(self, wall_seconds: float) -> SearchResult:
        """The search's result; :class:`TrainingError` if every model failed."""
        check_not_all_failed(self.models)
        wall = self._previous_wall + wall_seconds
        return self.recorder.search_result(
            dict(self.models), list(self.units), wall, self.book.best_model_id()
        )

    def _write_run_record(self, status: str, started: float) -> None:
        self.recorder.write(
            status,
            started=started,
            wall_before=self._previous_wall,
            models=self.models,
            best_model_id=self.book.best_model_id(),
            worker_losses=self.worker_losses,
            workers=self.workers.setups,
        )


def _format_metrics(metrics: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items()))
