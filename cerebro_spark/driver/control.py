"""Live control of a running search from another thread: the human in the loop, without a server.

A :class:`SearchControl` is shared by the driver's thread and the user's. The user's thread
``submit``\\ s commands (stop a model, resume one, add configurations, interrupt the search) and
gets a :class:`~concurrent.futures.Future` for each; the driver drains the queue after every unit
result, so a command takes effect when the next unit completes (a stop waits for the model's
units in flight). After each drain the driver publishes a snapshot of its records, which the
user's thread reads without touching the driver's live state.

Every command the driver applies is written to the run's event log (see
:mod:`cerebro_spark.driver.resume`), so a resumed run replays it at the same point.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from cerebro_spark.driver.records import SearchResult
from cerebro_spark.errors import InvalidParamError

#: The reason a model stopped by :class:`StopModel` gets, unless the command gives one.
USER_STOP_REASON = "stopped by the user"


@dataclass(frozen=True, slots=True)
class StopModel:
    """Stop ``model_id`` (running or paused) now; its partial epoch, if any, is dropped."""

    model_id: str
    reason: str = USER_STOP_REASON


@dataclass(frozen=True, slots=True)
class ResumeModel:
    """Train ``model_id`` (stopped, completed or paused) on until it has ``epochs`` epochs in all.

    ``epochs=None``: the search's epochs for that model. The model leaves the search algorithm's
    hands: the user's target decides when it ends.
    """

    model_id: str
    epochs: int | None = None


@dataclass(frozen=True, slots=True)
class AddModels:
    """Start new models with these configurations, each trained for ``epochs`` epochs.

    ``epochs=None``: the search's epochs. The driver names them ``u0000``, ``u0001``... (recorded in
    ``model_ids`` when applied).
    """

    params: tuple[dict[str, Any], ...]
    epochs: int | None = None
    model_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Interrupt:
    """End the search as Ctrl-C would: recorded as interrupted, resumable with the same run id."""


Command = StopModel | ResumeModel | AddModels | Interrupt
_KINDS: dict[str, type] = {"stop": StopModel, "resume": ResumeModel, "add": AddModels, "interrupt": Interrupt}


def command_to_dict(command: Command) -> dict[str, Any]:
    """A JSON-ready description of ``command`` (its ``kind`` and fields)."""
    kind = next(k for k, cls in _KINDS.items() if isinstance(command, cls))
    fields = {name: getattr(command, name) for name in command.__slots__}
    if isinstance(command, AddModels):
        fields["params"] = [dict(p) for p in command.params]
        fields["model_ids"] = list(command.model_ids)
    return {"kind": kind, **fields}


def command_from_dict(data: dict[str, Any]) -> Command:
    """The inverse of :func:`command_to_dict`."""
    fields = {k: v for k, v in data.items() if k != "kind"}
    if data["kind"] == "add":
        fields["params"] = tuple(dict(p) for p in fields["params"])
        fields["model_ids"] = tuple(fields.get("model_ids", ()))
    command: Command = _KINDS[data["kind"]](**fields)
    return command


def check_target_epochs(epochs: Any) -> int | None:
    """A command's target number of epochs: ``epochs`` if it is None (the search's epochs) or an
    int >= 1, else :class:`InvalidParamError`."""
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
        raise InvalidParamError(f"epochs must be an int >= 1 or None. Received: epochs={epochs!r}")
    return epochs


class SearchControl:
    """The channel between a running search's driver and the user's thread (thread-safe).

    Examples
    --------
    >>> control = SearchControl()
    >>> future = control.submit(StopModel("m0001"))
    >>> [type(c).__name__ for c, _ in control.drain()]
    ['StopModel']
    """

    def __init__(self) -> None:
        self._commands: queue.SimpleQueue[tuple[Command, Future[Any]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._snapshot: SearchResult | None = None
        self._state = "starting"

    # ---- the user's side -------------------------------------------------------------------

    def submit(self, command: Command) -> Future[Any]:
        """Queue ``command``; the future completes when the driver applied it (or failed to)."""
        future: Future[Any] = Future()
        with self._lock:
            if self._state in ("finished", "failed", "interrupted"):
                future.set_exception(
                    InvalidParamError(
                        f"The search has ended ({self._state}): commands no longer apply. Received: {command}. "
                        "Use ModelSelectionModel.continue_training to train models further."
                    )
                )
                return future
            self._commands.put((command, future))
        return future

    def snapshot(self) -> SearchResult | None:
        """The driver's records as of its last published step (None before the first)."""
        with self._lock:
            return self._snapshot

    @property
    def state(self) -> str:
        """``starting``, ``running``, ``finished``, ``failed`` or ``interrupted``."""
        with self._lock:
            return self._state

    # ---- the driver's side -----------------------------------------------------------------

    def drain(self) -> list[tuple[Command, Future[Any]]]:
        """Take every queued command, oldest first."""
        items = []
        while True:
            try:
                items.append(self._commands.get_nowait())
            except queue.Empty:
                return items

    def publish(self, snapshot: SearchResult, state: str = "running") -> None:
        """Make ``snapshot`` the one users see; ``state`` says where the search is."""
        with self._lock:
            self._snapshot, self._state = snapshot, state

    def close(self, state: str, snapshot: SearchResult | None = None) -> None:
        """The search ended (``finished``, ``failed``, ``interrupted``): fail the commands still queued."""
        with self._lock:
            self._state = state
            if snapshot is not None:
                self._snapshot = snapshot
        for command, future in self.drain():
            future.set_exception(
                InvalidParamError(f"The search ended ({state}) before the command applied: {command}.")
            )
