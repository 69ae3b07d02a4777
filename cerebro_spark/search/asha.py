"""ASHA: asynchronous successive halving under model hopping (no model ever waits at a rung)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from cerebro_spark.errors import SchedulerError
from cerebro_spark.search._rungs import (
    check_epoch_range,
    check_metric,
    check_reduction_factor,
    check_seed,
    format_value,
    metric_value,
    ranked,
    rung_epochs,
)
from cerebro_spark.search.base import Decision, SearchAlgorithm, Trial, check_positive_int, make_model_id
from cerebro_spark.search.space import describe_space, sample, validate_space


class ASHAAlgorithm(SearchAlgorithm):
    """Asynchronous successive halving (Li et al., 2020) with a budget of configurations.

    Rungs sit at epochs ``min_epochs * eta**k`` below ``max_epochs``. When a model reaches a rung,
    its result joins those recorded there; with ``n`` results, the models among the best
    ``n // eta`` that were not promoted yet are promoted (they continue). A model that is not
    promoted waits at the rung, holding no worker, and a new configuration takes its place; it is
    promoted later if enough worse results arrive (the standard rule of Li et al., Algorithm 2:
    rungs never wait for each other). ``max_concurrent`` models run while configurations are left.
    When none runs and none is left, the search ends: if no model completed yet, the best model
    waiting at the highest rung trains on to ``max_epochs``; the others stop, each with its reason.

    Parameters
    ----------
    space : Mapping[str, Any]
        Name -> dimension or constant; all ``num_models`` configurations are drawn with ``seed``.
    num_models : int
        Budget of configurations to try in all (>= 1).
    max_epochs : int
        Epochs of a model that is never stopped (>= min_epochs).
    min_epochs : int, default 1
        Epoch of the first rung (>= 1).
    reduction_factor : int, default 3
        ``eta`` (>= 2).
    seed : int
        Decides the configurations (>= 0).
    metric : str
        Metric that ranks models, e.g. ``"val_loss"``.
    mode : {"min", "max", "auto"}
        Whether smaller or larger ``metric`` is better.
    max_concurrent : int or None, default None
        Models live at once (>= 1); None starts every configuration at once. The Spark ML layer
        passes twice the number of workers.

    Raises
    ------
    InvalidParamError
        If a count, epoch, ``reduction_factor``, ``seed``, ``metric`` or ``mode`` is invalid.

    Examples
    --------
    >>> from cerebro_spark.search import hp_uniform
    >>> algo = ASHAAlgorithm({"lr": hp_uniform(0, 1)}, num_models=20, max_epochs=9, seed=0,
    ...                      metric="val_loss", mode="min", max_concurrent=4)
    >>> algo.rungs, [t.model_id for t in algo.initial_trials()]
    ([1, 3], ['m0000', 'm0001', 'm0002', 'm0003'])
    """

    def __init__(
        self,
        space: Mapping[str, Any],
        *,
        num_models: int,
        max_epochs: int,
        min_epochs: int = 1,
        reduction_factor: int = 3,
        seed: int,
        metric: str,
        mode: str,
        max_concurrent: int | None = None,
    ) -> None:
        self.num_models = check_positive_int("num_models", num_models)
        self.min_epochs, self.num_epochs = check_epoch_range(min_epochs, max_epochs)
        self.eta = check_reduction_factor(reduction_factor)
        self.seed = check_seed(seed)
        self.metric, self.mode = check_metric(metric, mode)
        if max_concurrent is not None:
            check_positive_int("max_concurrent", max_concurrent)
        self.max_concurrent = self.num_models if max_concurrent is None else min(max_concurrent, num_models)
        self.space = validate_space(space)
        self.rungs = rung_epochs(self.min_epochs, self.num_epochs, self.eta)
        configs = sample(self.space, self.num_models, self.seed)
        self._trials = [Trial(make_model_id(i), params) for i, params in enumerate(configs)]
        self._proposed = self.max_concurrent
        self._running: set[str] = {t.model_id for t in self._trials[: self.max_concurrent]}
        self._waiting: dict[str, int] = {}  # model -> the rung epoch where it waits for a promotion
        self._results: dict[int, dict[str, float]] = {epoch: {} for epoch in self.rungs}
        self._promoted: dict[int, set[str]] = {epoch: set() for epoch in self.rungs}
        self.stop_reasons: dict[str, str] = {}
        self._completed = 0

    def initial_trials(self) -> list[Trial]:
        return self._trials[: self.max_concurrent]

    @property
    def num_proposed(self) -> int:
        """Configurations started so far (at most ``num_models``)."""
        return self._proposed

    def on_epoch_end(self, model_id: str, epoch: int, metrics: Mapping[str, float]) -> Decision:
        if model_id not in self._running:
            raise SchedulerError(
                f"ASHAAlgorithm got epoch {epoch} of model {model_id!r}, which is not running "
                f"(running: {sorted(self._running)}). This is a bug in the caller."
            )
        if epoch >= self.num_epochs:
            self._running.discard(model_id)
            self._completed += 1
            self.stop_reasons[model_id] = f"completed {self.num_epochs} epochs"
            return self._after(Decision(stop=True, reason=self.stop_reasons[model_id]))
        if epoch not in self._results:
            return Decision()
        self._results[epoch][model_id] = metric_value(metrics, self.metric, model_id)
        promote = self._promotable(epoch)
        if model_id in promote:
            self._promoted[epoch].add(model_id)
            return Decision()
        self._running.discard(model_id)
        self._waiting[model_id] = epoch
        resume = tuple(m for m in promote if m in self._waiting)
        for m in resume:
            del self._waiting[m]
            self._promoted[epoch].add(m)
            self._running.add(m)
        return self._after(Decision(pause=True, resume=resume), current=model_id)

    def on_model_failed(self, model_id: str, error: str) -> Decision:
        if model_id not in self._running:
            return Decision()
        self._running.discard(model_id)
        self.stop_reasons[model_id] = "failed"
        return self._after(Decision())

    def on_model_left(self, model_id: str, reason: str) -> Decision:
        """A running or waiting model left: it frees its place, and waits at no rung any more."""
        if model_id not in self._running and model_id not in self._waiting:
            return Decision()
        self._running.discard(model_id)
        self._waiting.pop(model_id, None)
        self.stop_reasons[model_id] = reason
        return self._after(Decision())

    def _promotable(self, epoch: int) -> list[str]:
        """Models of the rung at ``epoch`` in the top ``n // eta`` and not yet promoted from it."""
        results = self._results[epoch]
        top = ranked(results, self.mode)[: len(results) // self.eta]
        return [m for m in top if m not in self._promoted[epoch]]

    def _after(self, decision: Decision, current: str | None = None) -> Decision:
        """Start new configurations up to ``max_concurrent`` running models. When nothing runs and
        none is left, the search ends: if no model has completed yet, the best model waiting at the
        highest rung goes on to ``max_epochs``; every other waiting model stops, with its reason."""
        new: list[Trial] = []
        while len(self._running) < self.max_concurrent and self._proposed < self.num_models:
            trial = self._trials[self._proposed]
            self._proposed += 1
            self._running.add(trial.model_id)
            new.append(trial)
        if self._running or not self._waiting:
            return replace(decision, new_trials=tuple(new))
        finalist = None if self._completed else self._best_waiting()
        if finalist is not None:
            self._promoted[self._waiting.pop(finalist)].add(finalist)
            self._running.add(finalist)
            if finalist == current:
                decision = replace(decision, pause=False)
            else:
                decision = replace(decision, resume=(*decision.resume, finalist))
        for model_id, epoch in self._waiting.items():
            results = self._results[epoch]
            self.stop_reasons[model_id] = (
                f"stopped at rung {self.rungs.index(epoch)} (epoch {epoch}): "
                f"{self.metric}={format_value(results[model_id])}, "
                f"not in the top {len(results) // self.eta} of {len(results)}"
            )
        others = tuple(m for m in self._waiting if m != current)
        if current is not None and current in self._waiting:
            decision = replace(decision, stop=True, pause=False, reason=self.stop_reasons[current])
        self._waiting.clear()
        return replace(
            decision,
            stop_paused=others,
            stop_paused_reason="stopped at a rung: not promoted before the search ended",
            stop_paused_reasons=tuple((m, self.stop_reasons[m]) for m in others),
        )

    def _best_waiting(self) -> str:
        """The best of the models waiting at the highest rung that has any (ties: by model id)."""
        epoch = max(self._waiting.values())
        results = self._results[epoch]
        return ranked({m: results[m] for m, e in self._waiting.items() if e == epoch}, self.mode)[0]

    def state(self) -> dict[str, Any]:
        return {
            **super().state(),
            "name": "asha",
            "num_models": self.num_models,
            "min_epochs": self.min_epochs,
            "reduction_factor": self.eta,
            "max_concurrent": self.max_concurrent,
            "metric": self.metric,
            "mode": self.mode,
            "seed": self.seed,
            "space": describe_space(self.space),
            "rung_results": {str(epoch): dict(results) for epoch, results in self._results.items()},
            "stop_reasons": dict(self.stop_reasons),
        }
