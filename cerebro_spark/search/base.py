"""The epoch template every search algorithm follows.

An algorithm proposes its first trials; after each epoch of each model it sees that model's metrics
and decides whether the model stops, and which new trials (if any) start. Grid, random, TPE,
Hyperband/ASHA and human-in-the-loop searches all fit this shape. Algorithms are pure: no I/O,
no clock, randomness only from their seed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cerebro_spark.errors import InvalidParamError


def make_model_id(index: int) -> str:
    """Return the id of the ``index``-th model an algorithm creates: ``"m0000"``, ``"m0001"``, ...

    Examples
    --------
    >>> make_model_id(7)
    'm0007'
    """
    return f"m{index:04d}"


def check_positive_int(name: str, value: Any) -> int:
    """Return ``value`` if it is an int >= 1, else raise :class:`InvalidParamError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidParamError(f"{name} must be an int >= 1. Received: {name}={value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Trial:
    """One model to train: its id (chosen by the algorithm) and its hyperparameters."""

    model_id: str
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Decision:
    """What happens after a model's epoch (or a model's failure).

    For the model that just finished an epoch: ``stop`` it (with ``reason``), ``pause`` it (it waits,
    holding no worker, until a later decision resumes or stops it: synchronous rungs), or else let it
    continue. Besides: ``resume`` paused models, stop paused models (``stop_paused``, with
    ``stop_paused_reason``), and start ``new_trials``. ``stop_paused_reasons`` may give a model of
    ``stop_paused`` its own reason, as ``(model_id, reason)`` pairs; others get ``stop_paused_reason``.
    """

    stop: bool = False
    reason: str = ""
    new_trials: tuple[Trial, ...] = ()
    pause: bool = False
    resume: tuple[str, ...] = ()
    stop_paused: tuple[str, ...] = ()
    stop_paused_reason: str = ""
    stop_paused_reasons: tuple[tuple[str, str], ...] = ()

    def reason_for_paused(self, model_id: str) -> str:
        """The reason ``model_id`` (one of ``stop_paused``) stops: its own if given, else the shared one."""
        return dict(self.stop_paused_reasons).get(model_id, self.stop_paused_reason)


class SearchAlgorithm(ABC):
    """Base class of the search algorithms (the epoch template).

    Subclasses set ``num_epochs`` and implement :meth:`initial_trials`; they may override
    :meth:`on_epoch_end` (early stopping, new trials) and extend :meth:`state`.
    """

    num_epochs: int

    @abstractmethod
    def initial_trials(self) -> list[Trial]:
        """Return the trials to start with (the same list on every call)."""

    def on_epoch_end(self, model_id: str, epoch: int, metrics: Mapping[str, float]) -> Decision:
        """Decide what happens to ``model_id`` after ``epoch`` (1-based) given its ``metrics``.

        The default stops a model once it has trained ``num_epochs`` epochs and never adds trials.

        Parameters
        ----------
        model_id : str
            The model that finished an epoch.
        epoch : int
            The epoch it finished (1-based).
        metrics : Mapping[str, float]
            Its metrics for that epoch: training metrics under Keras' names (``loss``...) and validation metrics as ``val_*``.

        Returns
        -------
        Decision
            ``stop=True`` with reason ``"completed N epochs"`` at the last epoch, else ``stop=False``.
        """
        if epoch >= self.num_epochs:
            return Decision(stop=True, reason=f"completed {self.num_epochs} epochs")
        return Decision(stop=False)

    def max_epochs(self, model_id: str) -> int:
        """The most epochs ``model_id`` may train; a model stopped there has *completed*."""
        return self.num_epochs

    def on_model_failed(self, model_id: str, error: str) -> Decision:
        """``model_id`` failed and has left the search; the returned decision's ``stop``/``pause``
        are ignored, its ``resume``, ``stop_paused`` and ``new_trials`` apply. Default: nothing."""
        return Decision()

    def on_model_left(self, model_id: str, reason: str) -> Decision:
        """``model_id`` left the algorithm's hands before it ended (a user stopped it, or took it over
        to train it on their own terms): the algorithm forgets it and no longer decides for it. The
        returned decision applies as for :meth:`on_model_failed`. Default: as a failure."""
        return self.on_model_failed(model_id, reason)

    def state(self) -> dict[str, Any]:
        """Return a JSON-able description of the algorithm, for the run record."""
        return {"name": type(self).__name__, "num_epochs": self.num_epochs}


class SingleTrialAlgorithm(SearchAlgorithm):
    """One model (``"m0000"``, no hyperparameters) trained for ``num_epochs`` epochs.

    What a plain ``KerasEstimator.fit`` runs: a search with nothing to choose.

    Parameters
    ----------
    num_epochs : int
        Epochs to train (>= 1).

    Raises
    ------
    InvalidParamError
        If ``num_epochs`` is not an int >= 1.

    Examples
    --------
    >>> SingleTrialAlgorithm(2).initial_trials()
    [Trial(model_id='m0000', params={})]
    """

    def __init__(self, num_epochs: int) -> None:
        self.num_epochs = check_positive_int("num_epochs", num_epochs)

    def initial_trials(self) -> list[Trial]:
        return [Trial(make_model_id(0), {})]

    def state(self) -> dict[str, Any]:
        return {**super().state(), "name": "single"}


class FixedTrialsAlgorithm(SearchAlgorithm):
    """Given configurations, each trained for its own number of epochs; nothing is chosen or stopped
    early. What ``KerasEstimator.fitMultiple`` runs: one trial per Spark ML param map.

    Parameters
    ----------
    params : sequence of dict
        One configuration per trial (``m0000``, ``m0001``... in this order).
    epochs : sequence of int
        Epochs of each trial (>= 1), as many as ``params``.

    Examples
    --------
    >>> algo = FixedTrialsAlgorithm([{"lr": 0.1}, {"lr": 0.01}], [1, 3])
    >>> [t.model_id for t in algo.initial_trials()], algo.max_epochs("m0001")
    (['m0000', 'm0001'], 3)
    """

    def __init__(self, params: Sequence[Mapping[str, Any]], epochs: Sequence[int]) -> None:
        if not params or len(params) != len(epochs):
            raise InvalidParamError(
                "FixedTrialsAlgorithm needs one epoch count per configuration and at least one "
                f"configuration. Received: {len(params)} configurations and {len(epochs)} epoch counts."
            )
        self._trials = [Trial(make_model_id(i), dict(p)) for i, p in enumerate(params)]
        self._epochs = {
            t.model_id: check_positive_int("num_epochs", e) for t, e in zip(self._trials, epochs, strict=True)
        }
        self.num_epochs = max(self._epochs.values())

    def initial_trials(self) -> list[Trial]:
        return list(self._trials)

    def max_epochs(self, model_id: str) -> int:
        return self._epochs[model_id]

    def on_epoch_end(self, model_id: str, epoch: int, metrics: Mapping[str, float]) -> Decision:
        if epoch >= self._epochs[model_id]:
            return Decision(stop=True, reason=f"completed {epoch} epochs")
        return Decision(stop=False)

    def state(self) -> dict[str, Any]:
        return {**super().state(), "name": "fixed", "epochs": dict(self._epochs)}
