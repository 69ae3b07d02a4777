"""The user's live commands, applied on the driver's thread: :class:`LiveCommands`.

The user's thread queues commands on a :class:`~cerebro_spark.driver.control.SearchControl`; the
driver drains them after every unit result (a stop waits until the model has no unit in flight)
and publishes a snapshot of its records. Each command applied is recorded as an event, so a
resumed run replays it at the same point (:mod:`cerebro_spark.driver.resume`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from typing import Any

from cerebro_spark.driver.book import PAUSED, STOPPED, ModelBook
from cerebro_spark.driver.control import (
    AddModels,
    Command,
    Interrupt,
    ResumeModel,
    SearchControl,
    StopModel,
    check_target_epochs,
    command_to_dict,
)
from cerebro_spark.driver.records import ModelRecord, ModelStatus, SearchResult
from cerebro_spark.driver.run_record import RunRecorder
from cerebro_spark.errors import InvalidParamError
from cerebro_spark.search import Trial

logger = logging.getLogger(__name__)


class LiveCommands:
    """Applies the user's commands to the models of a running search.

    Parameters
    ----------
    control : SearchControl or None
        Where the commands come from (None: a search without live control; :meth:`apply` still
        serves a resume's replay).
    book : ModelBook
        The models the commands move.
    recorder : RunRecorder
        Records each command applied, and deletes the checkpoints a stop leaves unneeded.
    """

    def __init__(self, control: SearchControl | None, book: ModelBook, recorder: RunRecorder) -> None:
        self.control = control
        self.book = book
        self.recorder = recorder
        self._pending: list[tuple[Command, Future[Any]]] = []  # stops waiting for units in flight

    def drain(self, in_flight: Callable[[str], bool], snapshot: Callable[[], SearchResult]) -> None:
        """Apply the commands queued (a stop of a model with units ``in_flight`` waits), then
        publish a ``snapshot``. Raises :class:`KeyboardInterrupt` after an :class:`Interrupt`."""
        if self.control is None:
            return
        interrupt = False
        pending, self._pending = [*self._pending, *self.control.drain()], []
        for command, future in pending:
            if isinstance(command, StopModel) and in_flight(command.model_id):
                self._pending.append((command, future))
                continue
            try:
                value = self.apply(command)
            except Exception as err:  # noqa: BLE001 - the user's thread gets it; the search goes on
                logger.warning("command %s failed: %s", command, err)
                future.set_exception(err)
                continue
            future.set_result(value)
            interrupt = interrupt or isinstance(command, Interrupt)
        self.control.publish(snapshot())
        if interrupt:
            raise KeyboardInterrupt(f"run {self.recorder.run_id} interrupted through its SearchControl")

    def apply(self, command: Command) -> Any:
        """Apply ``command`` and record it; returns what the user's future gets."""
        value: Any = None
        stale: list[int] = []
        if isinstance(command, StopModel):
            stale = self._stop(command.model_id, command.reason)
        elif isinstance(command, ResumeModel):
            self._resume(command.model_id, check_target_epochs(command.epochs))
        elif isinstance(command, AddModels):
            command = replace(
                command, model_ids=command.model_ids or self.book.user_model_ids(len(command.params))
            )
            value = self._add(command)
        if not isinstance(command, Interrupt):
            self.recorder.event({"event": "command", "command": command_to_dict(command)})
        if isinstance(command, StopModel):  # only once the stop is journaled: a crash between the two
            self.recorder.delete_checkpoints(command.model_id, stale)  # leaves files, not a dangling journal
        return value

    def _known(self, model_id: str, verb: str) -> ModelRecord:
        if model_id not in self.book.models:
            raise InvalidParamError(
                f"Cannot {verb} model {model_id!r}: no such model in run {self.recorder.run_id!r}. "
                f"Models: {list(self.book.models)}."
            )
        return self.book.models[model_id]

    def _stop(self, model_id: str, reason: str) -> list[int]:
        """Stop a running or paused model now; an epoch it had not finished is dropped (its version
        goes back to its last epoch's), so a later resume trains that epoch whole. Returns the
        checkpoint versions no longer needed (the caller deletes them after journaling the stop)."""
        model = self._known(model_id, "stop")
        if model_id not in self.book.scheduler.active_models:
            raise InvalidParamError(
                f"Cannot stop model {model_id!r}: it is not running or paused. Received a stop for a "
                f"model that is {model.status!r}."
            )
        self.book.end(model_id, STOPPED, reason)
        self.book.drop_epoch(model_id)
        stale = self.book.stale_versions(model_id)
        self.book.leave(model_id, reason)
        return stale

    def _resume(self, model_id: str, epochs: int | None) -> None:
        """Train a stopped, completed or paused model on to ``epochs`` epochs, under the user's control."""
        model = self._known(model_id, "resume")
        paused = self.book.status(model_id) is PAUSED
        if model.status == ModelStatus.FAILED or (
            model_id in self.book.scheduler.active_models and not paused
        ):
            raise InvalidParamError(
                f"Cannot resume model {model_id!r}: only a stopped, completed or paused model can be "
                f"resumed. Received a resume for a model that is {model.status!r}."
            )
        target = self.book.max_epochs(model_id) if epochs is None else epochs
        if target <= model.epochs:
            raise InvalidParamError(
                f"Cannot resume model {model_id!r} to {target} epochs: it has trained {model.epochs} "
                f"already. Pass epochs= greater than {model.epochs}."
            )
        if paused:  # the search algorithm hears of it; a model it ended it has forgotten
            self.book.leave(model_id, "taken over by the user")
        self.book.take_over(model_id, target)
        self.book.resume(model_id)

    def _add(self, command: AddModels) -> list[str]:
        if not command.params or len(command.model_ids) != len(command.params):
            raise InvalidParamError(
                f"add_models needs at least one configuration. Received: {command.params!r}"
            )
        target = check_target_epochs(command.epochs) or self.book.search.num_epochs
        for model_id, params in zip(command.model_ids, command.params, strict=True):
            if model_id in self.book.models:
                raise InvalidParamError(f"Cannot add model {model_id!r}: a model with this id exists.")
            self.book.add(Trial(model_id, dict(params)), target=target)
        return list(command.model_ids)
