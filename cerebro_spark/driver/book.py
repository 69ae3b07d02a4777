"""Each model's state on the driver: the :class:`ModelBook`.

A model moves between the states of :class:`~cerebro_spark.driver.records.ModelStatus` (what its
``ModelRecord.status`` shows)::

    running --pause--> paused --resume--> running
    running | paused --end--> completed | stopped | failed
    completed | stopped --resume (by the user)--> running

Any other move raises :class:`~cerebro_spark.errors.SchedulerError`. Each move keeps the scheduler
in step: a model that ends is stopped there, a model resumed is continued or added again.

Besides the status the book keeps, for each model, what the driver needs between units: whether
one of its units failed while others were still out (*failing*: it fails when they are back),
whether the search algorithm still decides for it or has left it (to the user, who may set a
*target* number of epochs), the checkpoint versions still in the Store, and the metrics of the
epoch under way. The search algorithm is asked here too: what it decides is applied as moves.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import cast

from cerebro_spark.driver.records import EpochRecord, ModelRecord, ModelStatus, weighted_means
from cerebro_spark.driver.settings import USER_MODEL_PREFIX
from cerebro_spark.errors import SchedulerError, TrainingError
from cerebro_spark.scheduler import MopScheduler
from cerebro_spark.search import Decision, Mode, SearchAlgorithm, Trial, is_better
from cerebro_spark.training.model_spec import ModelSpec

logger = logging.getLogger(__name__)

RUNNING, PAUSED = ModelStatus.RUNNING, ModelStatus.PAUSED
COMPLETED, STOPPED, FAILED = ModelStatus.COMPLETED, ModelStatus.STOPPED, ModelStatus.FAILED

#: The legal moves: status -> the statuses it may go to.
MOVES: dict[ModelStatus, frozenset[ModelStatus]] = {
    RUNNING: frozenset({PAUSED, COMPLETED, STOPPED, FAILED}),
    PAUSED: frozenset({RUNNING, STOPPED, FAILED}),
    COMPLETED: frozenset({RUNNING}),
    STOPPED: frozenset({RUNNING}),
    FAILED: frozenset(),
}

#: The statuses of a model the scheduler no longer has.
ENDED = frozenset({COMPLETED, STOPPED, FAILED})


@dataclass
class EpochParts:
    """The epoch under way of one model: (metrics, rows) of each training and validation unit."""

    train: list[tuple[dict[str, float], int]] = field(default_factory=list)
    val: list[tuple[dict[str, float], int]] = field(default_factory=list)
    train_seconds: float = 0.0


@dataclass
class _Line:
    """The book's line for one model, besides its record."""

    failing: bool = False  # a unit failed: the model fails once its other units are back
    left: bool = False  # the search algorithm no longer decides for it
    target: int | None = None  # the epochs the user asked for (a model the user added or took over)
    versions: set[int] = field(default_factory=lambda: {0})  # its checkpoints in the Store
    parts: EpochParts = field(default_factory=EpochParts)


class ModelBook:
    """Every model of one search: its record, its state and the legal moves between states.

    Parameters
    ----------
    scheduler : MopScheduler
        The unit scheduler, kept in step with every move.
    search : SearchAlgorithm
        Decides after each epoch for the models it has not left.
    model_factory : callable
        Builds a trial's :class:`ModelSpec`.
    metric, mode : str
        The evaluation metric (a history name such as ``val_loss``) and ``min`` or ``max``.

    Attributes
    ----------
    models : dict of str to ModelRecord
        The records, in the order the models were added (callers may hold on to this dict).
    specs : dict of str to ModelSpec
        Each model's spec.
    """

    def __init__(
        self,
        scheduler: MopScheduler,
        search: SearchAlgorithm,
        model_factory: Callable[[Trial], ModelSpec],
        *,
        metric: str,
        mode: str,
    ) -> None:
        self.scheduler = scheduler
        self.search = search
        self.model_factory = model_factory
        self.metric, self.mode = metric, cast(Mode, mode)  # is_better checks it
        self.models: dict[str, ModelRecord] = {}
        self.specs: dict[str, ModelSpec] = {}
        self._lines: dict[str, _Line] = {}

    # ---- states and moves ------------------------------------------------------------------------

    def add(self, trial: Trial, *, target: int | None = None) -> ModelRecord:
        """Build the trial's model and start it (running). With ``target``, the user's model: it
        trains ``target`` epochs and the search algorithm never decides for it."""
        spec = self.model_factory(trial)
        self.specs[trial.model_id] = spec
        record = self.models[trial.model_id] = ModelRecord(trial.model_id, dict(trial.params))
        self._lines[trial.model_id] = _Line(left=target is not None, target=target)
        self.scheduler.add_model(trial.model_id)
        return record

    def status(self, model_id: str) -> ModelStatus:
        """The model's status."""
        return ModelStatus(self.models[model_id].status)

    def with_status(self, status: ModelStatus) -> list[str]:
        """The models in ``status``, sorted."""
        return sorted(m for m, record in self.models.items() if record.status == status)

    def pause(self, model_id: str) -> None:
        """Running -> paused, after an epoch: the search algorithm will resume or stop it later."""
        self._move(model_id, PAUSED)

    def next_epoch(self, model_id: str) -> None:
        """The running model goes on to its next epoch."""
        self._check(model_id, RUNNING)
        self.scheduler.continue_model(model_id)

    def resume(self, model_id: str) -> None:
        """Paused -> running (the scheduler continues it), or completed | stopped -> running (the
        scheduler takes it again from its next epoch)."""
        was = self._move(model_id, RUNNING)
        if was is PAUSED:
            self.scheduler.continue_model(model_id)
        else:
            self.scheduler.add_model(model_id, next_epoch=self.models[model_id].epochs + 1)

    def end(self, model_id: str, status: ModelStatus, reason: str) -> None:
        """Running | paused -> ``status`` (completed, stopped or failed) for ``reason``; the
        scheduler drops the model."""
        if status not in ENDED:
            raise SchedulerError(f"Cannot end model {model_id!r} as {status}: not an end state.")
        self._move(model_id, status, reason)
        self.scheduler.stop_model(model_id)
        self._lines[model_id].failing = False

    def fail(self, model_id: str, reason: str) -> None:
        """End the model as failed (its record's ``error`` already set) and tell the search
        algorithm, unless it has left the model."""
        self.end(model_id, FAILED, reason)
        if not self._lines[model_id].left:
            self.apply(self.search.on_model_failed(model_id, self.models[model_id].error))

    def mark_failing(self, model_id: str) -> None:
        """A unit of the model failed; it fails when its units still out are back."""
        self._lines[model_id].failing = True

    def is_failing(self, model_id: str) -> bool:
        """Whether a unit of the model failed and the model has not ended yet."""
        return self._lines[model_id].failing

    def failing(self) -> list[str]:
        """The failing models, sorted."""
        return sorted(m for m, line in self._lines.items() if line.failing)

    def _check(self, model_id: str, *allowed: ModelStatus) -> ModelStatus:
        status = self.status(model_id)
        if status not in allowed:
            raise SchedulerError(
                f"Model {model_id!r} is {status}, not {' or '.join(map(str, allowed))}. "
                "This is a bug in cerebro_spark."
            )
        return status

    def _move(self, model_id: str, to: ModelStatus, reason: str = "") -> ModelStatus:
        """Set the model's status to ``to`` (and its reason); returns the status it had."""
        record = self.models[model_id]
        was = ModelStatus(record.status)
        if to not in MOVES[was]:
            raise SchedulerError(
                f"Model {model_id!r} cannot go from {was} to {to} (from {was} it may go to: "
                f"{', '.join(sorted(MOVES[was])) or 'nothing'}). This is a bug in cerebro_spark."
            )
        record.status, record.reason = to.value, reason
        logger.debug("model %s: %s -> %s %s", model_id, was, to, reason)
        return was

    # ---- who decides: the search algorithm or the user ------------------------------------------

    def decide(self, model_id: str, epoch: int, metrics: dict[str, float]) -> Decision:
        """The search algorithm decides after an epoch, or the user's target for a model taken over."""
        target = self._lines[model_id].target
        if target is None:
            return self.search.on_epoch_end(model_id, epoch, metrics)
        return Decision(stop=True, reason=f"completed {target} epochs") if epoch >= target else Decision()

    def after_epoch(self, model_id: str, epoch: int, metrics: dict[str, float]) -> None:
        """The model closed ``epoch`` with ``metrics``: it moves as :meth:`decide` says (completed,
        or stopped short of its epochs; paused; or on to its next epoch), then the rest of the
        decision is applied (:meth:`apply`)."""
        decision = self.decide(model_id, epoch, metrics)
        if decision.stop:
            completed = epoch >= self.max_epochs(model_id)
            self.end(model_id, COMPLETED if completed else STOPPED, decision.reason)
        elif decision.pause:
            self.pause(model_id)
        else:
            self.next_epoch(model_id)
        self.apply(decision)

    def max_epochs(self, model_id: str) -> int:
        """The epochs the model is meant to train in all."""
        target = self._lines[model_id].target
        return self.search.max_epochs(model_id) if target is None else target

    def has_left(self, model_id: str) -> bool:
        """Whether the search algorithm no longer decides for the model."""
        line = self._lines.get(model_id)
        return line is not None and line.left

    def leave(self, model_id: str, reason: str) -> None:
        """Tell the search algorithm that the model left it (once); apply what it decides."""
        line = self._lines[model_id]
        if line.left:
            return
        line.left = True
        self.apply(self.search.on_model_left(model_id, reason))

    def take_over(self, model_id: str, target: int) -> None:
        """The user decides for the model from now on: it trains until it has ``target`` epochs.
        (Call :meth:`leave` before, if the search algorithm still has to hear of it.)"""
        line = self._lines[model_id]
        line.left, line.target = True, target

    def apply(self, decision: Decision) -> None:
        """Resume or stop paused models, and start new trials, as the search algorithm decided
        (models it left are no longer its to move)."""
        decision = replace(
            decision,
            resume=tuple(m for m in decision.resume if not self.has_left(m)),
            stop_paused=tuple(m for m in decision.stop_paused if not self.has_left(m)),
        )
        for model_id in (*decision.resume, *decision.stop_paused):
            if model_id not in self.models or self.status(model_id) is not PAUSED:
                raise SchedulerError(
                    f"The search algorithm resumed or stopped model {model_id!r}, which is not paused "
                    f"(paused: {self.with_status(PAUSED)}). This is a bug in the search algorithm."
                )
        for model_id in decision.resume:
            self.resume(model_id)
        for model_id in decision.stop_paused:
            self.end(model_id, STOPPED, decision.reason_for_paused(model_id))
        for trial in decision.new_trials:
            self.add(trial)

    def user_model_ids(self, count: int) -> tuple[str, ...]:
        """Ids for ``count`` new models of the user's (``u0000``, ``u0001``...)."""
        start = sum(1 for m in self.models if m.startswith(USER_MODEL_PREFIX))
        return tuple(f"{USER_MODEL_PREFIX}{i:04d}" for i in range(start, start + count))

    # ---- epochs, checkpoints, the best epoch -----------------------------------------------------

    def take_train(
        self, model_id: str, version: int, metrics: dict[str, float], rows: int, seconds: float
    ) -> None:
        """A training unit of the epoch under way completed: the model is now at ``version``."""
        line = self._lines[model_id]
        self.models[model_id].version = version
        line.versions.add(version)
        line.parts.train.append((metrics, rows))
        line.parts.train_seconds += seconds

    def take_val(self, model_id: str, metrics: dict[str, float], rows: int) -> None:
        """A validation unit of the epoch under way completed."""
        self._lines[model_id].parts.val.append((metrics, rows))

    def close_epoch(self, model_id: str, epoch: int) -> EpochRecord:
        """The epoch's record (row-weighted metrics, ``val_`` names for validation), added to the
        model's history."""
        line, model = self._lines[model_id], self.models[model_id]
        parts, line.parts = line.parts, EpochParts()
        metrics = weighted_means(parts.train)
        metrics.update({f"val_{k}": v for k, v in weighted_means(parts.val).items()})
        record = EpochRecord(
            model_id=model_id,
            epoch=epoch,
            metrics=metrics,
            version=model.version,
            train_rows=sum(r for _, r in parts.train),
            val_rows=sum(r for _, r in parts.val),
            train_seconds=parts.train_seconds,
            finished_at=time.time(),
        )
        model.history.append(record)
        return record

    def drop_epoch(self, model_id: str) -> None:
        """Forget the epoch under way: the model goes back to its last epoch's version."""
        model = self.models[model_id]
        self._lines[model_id].parts = EpochParts()
        model.version = model.history[-1].version if model.history else 0

    def update_best(self, model_id: str, record: EpochRecord) -> None:
        """Make ``record`` the model's best epoch if its metric is better."""
        model, metric = self.models[model_id], self.metric
        if metric not in record.metrics:
            raise TrainingError(
                f"The evaluation metric {metric!r} is not among the metrics of model {model_id!r}: "
                f"{sorted(record.metrics)}. Pass one of those as the evaluation metric."
            )
        best = None if model.best_epoch is None else model.history[model.best_epoch - 1].metrics[metric]
        if is_better(record.metrics[metric], best, self.mode):
            model.best_epoch, model.best_version = record.epoch, record.version

    def stale_versions(self, model_id: str) -> list[int]:
        """The model's checkpoint versions that are neither its latest nor its best; the book
        forgets them (the caller deletes them)."""
        model, live = self.models[model_id], self._lines[model_id].versions
        stale = sorted(live - {model.version, model.best_version})
        live.difference_update(stale)
        return stale

    def best_model_id(self) -> str | None:
        """The model with the best epoch of all (ties go to the model added first)."""
        best_id, best_value = None, None
        for model in self.models.values():
            if model.best_epoch is None:
                continue
            value = model.history[model.best_epoch - 1].metrics[self.metric]
            if is_better(value, best_value, self.mode):
                best_id, best_value = model.model_id, value
        return best_id
