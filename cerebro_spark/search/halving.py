"""Synchronous successive halving and Hyperband under model hopping.

Rungs sit at epochs ``min_epochs * eta**k`` below ``max_epochs``. A model that reaches a rung
pauses (holding no worker) until every live model of its bracket has reached it; then the best
``1/eta`` resume and the others stop, each with the reason. Failed models leave their rung.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

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
from cerebro_spark.search.metrics import Mode
from cerebro_spark.search.space import describe_space, sample, validate_space


class _Bracket:
    """The rung bookkeeping of one successive-halving bracket (pure state, no trials)."""

    def __init__(
        self, model_ids: Sequence[str], rungs: Sequence[int], eta: int, metric: str, mode: Mode, label: str
    ) -> None:
        self.rungs = list(rungs)
        self.eta, self.metric, self.mode, self.label = eta, metric, mode, label
        self.waiting: dict[str, int] = {m: 0 for m in model_ids} if self.rungs else {}
        self.arrived: dict[int, dict[str, float]] = {}
        self.reasons: dict[str, str] = {}

    def arrive(self, model_id: str, epoch: int, value: float) -> Decision | None:
        """``model_id`` finished ``epoch``; None when that epoch is not its next rung."""
        k = self.waiting.get(model_id)
        if k is None or self.rungs[k] != epoch:
            return None
        del self.waiting[model_id]
        self.arrived.setdefault(k, {})[model_id] = value
        return self._resolve(k, model_id)

    def fail(self, model_id: str) -> Decision:
        """``model_id`` failed: it leaves its rung, which may now be complete."""
        k = self.waiting.pop(model_id, None)
        if k is None or not self.arrived.get(k):
            return Decision()
        return self._resolve(k, None)

    def leave(self, model_id: str) -> Decision:
        """``model_id`` left: it is ranked at no rung, and no rung waits for it."""
        for results in self.arrived.values():
            results.pop(model_id, None)
        self.arrived = {k: results for k, results in self.arrived.items() if results}
        return self.fail(model_id)

    def _resolve(self, k: int, current: str | None) -> Decision:
        if any(rung == k for rung in self.waiting.values()):
            return Decision(pause=current is not None)
        results = self.arrived.pop(k)
        order = ranked(results, self.mode)
        keep = max(1, len(order) // self.eta)
        winners, losers = order[:keep], order[keep:]
        if k + 1 < len(self.rungs):
            self.waiting.update({m: k + 1 for m in winners})
        where = f"{self.label}rung {k} (epoch {self.rungs[k]})"
        for m in losers:
            self.reasons[m] = (
                f"stopped at {where}: {self.metric}={format_value(results[m])}, "
                f"not in the top {keep} of {len(order)}"
            )
        others = tuple(m for m in losers if m != current)
        shared = f"stopped at {where}: not in the top {keep} of {len(order)} by {self.metric}"
        stop = current in losers
        return Decision(
            stop=stop,
            reason=self.reasons[current] if stop and current is not None else "",
            resume=tuple(m for m in winners if m != current),
            stop_paused=others,
            stop_paused_reason=shared,
            stop_paused_reasons=tuple((m, self.reasons[m]) for m in others),
        )


class _RungSearch(SearchAlgorithm):
    """Brackets of successive halving over trials fixed at the start (shared by SHA and Hyperband)."""

    eta: int
    _trials: list[Trial]
    _brackets: list[_Bracket]
    _bracket_of: dict[str, _Bracket]

    def _setup(self, space: Mapping[str, Any], max_epochs: int, seed: int, metric: str, mode: str) -> None:
        self.space = validate_space(space)
        self.num_epochs = max_epochs
        self.seed = check_seed(seed)
        self.metric, self.mode = check_metric(metric, mode)

    def _add_brackets(
        self, sizes: Sequence[int], rungs: Sequence[Sequence[int]], labels: Sequence[str]
    ) -> None:
        configs = sample(self.space, sum(sizes), self.seed)
        self._trials = [Trial(make_model_id(i), params) for i, params in enumerate(configs)]
        self._brackets, self._bracket_of, start = [], {}, 0
        for size, bracket_rungs, label in zip(sizes, rungs, labels, strict=True):
            ids = [t.model_id for t in self._trials[start : start + size]]
            bracket = _Bracket(ids, bracket_rungs, self.eta, self.metric, self.mode, label)
            self._brackets.append(bracket)
            self._bracket_of.update({m: bracket for m in ids})
            start += size

    def initial_trials(self) -> list[Trial]:
        return list(self._trials)

    def on_epoch_end(self, model_id: str, epoch: int, metrics: Mapping[str, float]) -> Decision:
        if epoch >= self.num_epochs:
            return Decision(stop=True, reason=f"completed {self.num_epochs} epochs")
        value = metric_value(metrics, self.metric, model_id)
        decision = self._bracket_of[model_id].arrive(model_id, epoch, value)
        return Decision() if decision is None else decision

    def on_model_failed(self, model_id: str, error: str) -> Decision:
        return self._bracket_of[model_id].fail(model_id)

    def on_model_left(self, model_id: str, reason: str) -> Decision:
        return self._bracket_of[model_id].leave(model_id)

    @property
    def stop_reasons(self) -> dict[str, str]:
        """Why each model stopped early so far: model id -> reason."""
        return {m: r for b in self._brackets for m, r in b.reasons.items()}

    def state(self) -> dict[str, Any]:
        return {
            **super().state(),
            "metric": self.metric,
            "mode": self.mode,
            "reduction_factor": self.eta,
            "seed": self.seed,
            "space": describe_space(self.space),
            "brackets": [
                {"models": [m for m, b in self._bracket_of.items() if b is bracket], "rungs": bracket.rungs}
                for bracket in self._brackets
            ],
            "stop_reasons": self.stop_reasons,
        }


class SuccessiveHalvingAlgorithm(_RungSearch):
    """Synchronous successive halving: ``num_models`` configurations, the best ``1/eta`` kept at each rung.

    Parameters
    ----------
    space : Mapping[str, Any]
        Name -> dimension or constant; configurations are drawn with ``seed``.
    num_models : int
        Configurations to start (>= 1).
    min_epochs, max_epochs : int
        First rung and last epoch (1 <= min_epochs <= max_epochs). Rungs at ``min_epochs * eta**k``
        below ``max_epochs``; the survivors of the last rung train to ``max_epochs``.
    reduction_factor : int, default 3
        ``eta`` (>= 2): a rung keeps its best ``max(1, n // eta)`` of ``n`` models.
    seed : int
        Decides the configurations (>= 0).
    metric : str
        Metric that ranks models at a rung, e.g. ``"val_loss"``.
    mode : {"min", "max", "auto"}
        Whether smaller or larger ``metric`` is better ("auto" infers it from the name).

    Raises
    ------
    InvalidParamError
        If a count, epoch, ``reduction_factor``, ``seed``, ``metric`` or ``mode`` is invalid.
    SearchSpaceError
        If ``space`` is invalid.

    Examples
    --------
    >>> from cerebro_spark.search import hp_uniform
    >>> algo = SuccessiveHalvingAlgorithm({"lr": hp_uniform(0, 1)}, num_models=9, min_epochs=1,
    ...                                   max_epochs=9, seed=0, metric="val_loss", mode="min")
    >>> algo.rungs, len(algo.initial_trials())
    ([1, 3], 9)
    """

    def __init__(
        self,
        space: Mapping[str, Any],
        *,
        num_models: int,
        min_epochs: int,
        max_epochs: int,
        reduction_factor: int = 3,
        seed: int,
        metric: str,
        mode: str,
    ) -> None:
        self.num_models = check_positive_int("num_models", num_models)
        min_epochs, max_epochs = check_epoch_range(min_epochs, max_epochs)
        self.eta = check_reduction_factor(reduction_factor)
        self._setup(space, max_epochs, seed, metric, mode)
        self.min_epochs = min_epochs
        self.rungs = rung_epochs(min_epochs, max_epochs, self.eta)
        self._add_brackets([self.num_models], [self.rungs], [""])

    def state(self) -> dict[str, Any]:
        return {
            **super().state(),
            "name": "successive_halving",
            "num_models": self.num_models,
            "min_epochs": self.min_epochs,
        }


class HyperbandAlgorithm(_RungSearch):
    """Hyperband: brackets of successive halving, from many models stopped early to few trained long.

    With ``s_max = floor(log_eta(max_epochs / min_epochs))``, bracket ``s`` (``s_max`` down to 0)
    starts ``ceil((s_max + 1) * eta**s / (s + 1))`` models whose first rung is at
    ``min_epochs * eta**(s_max - s)``. Every bracket's models start at once, so workers stay busy;
    rungs synchronize within a bracket only. Model ids run on across brackets.

    Parameters
    ----------
    space : Mapping[str, Any]
        Name -> dimension or constant; all configurations come from one draw with ``seed``.
    max_epochs : int
        Epochs of a model that is never stopped (>= min_epochs).
    min_epochs : int, default 1
        Epoch of the first rung of the most aggressive bracket (>= 1).
    reduction_factor : int, default 3
        ``eta`` (>= 2).
    seed : int
        Decides the configurations (>= 0).
    metric : str
        Metric that ranks models, e.g. ``"val_loss"``.
    mode : {"min", "max", "auto"}
        Whether smaller or larger ``metric`` is better.

    Raises
    ------
    InvalidParamError
        If an epoch, ``reduction_factor``, ``seed``, ``metric`` or ``mode`` is invalid.

    Examples
    --------
    >>> from cerebro_spark.search import hp_uniform
    >>> algo = HyperbandAlgorithm({"lr": hp_uniform(0, 1)}, max_epochs=9, seed=0, metric="val_loss",
    ...                           mode="min")
    >>> algo.bracket_sizes, algo.bracket_rungs
    ([9, 5, 3], [[1, 3], [3], []])
    """

    def __init__(
        self,
        space: Mapping[str, Any],
        *,
        max_epochs: int,
        min_epochs: int = 1,
        reduction_factor: int = 3,
        seed: int,
        metric: str,
        mode: str,
    ) -> None:
        min_epochs, max_epochs = check_epoch_range(min_epochs, max_epochs)
        self.eta = check_reduction_factor(reduction_factor)
        self._setup(space, max_epochs, seed, metric, mode)
        self.min_epochs = min_epochs
        s_max = 0
        while min_epochs * self.eta ** (s_max + 1) <= max_epochs:
            s_max += 1
        self.bracket_sizes, self.bracket_rungs = [], []
        for s in range(s_max, -1, -1):
            self.bracket_sizes.append(-(-(s_max + 1) * self.eta**s // (s + 1)))
            first = min_epochs * self.eta ** (s_max - s)
            self.bracket_rungs.append(rung_epochs(first, max_epochs, self.eta))
        labels = [f"bracket {i}, " for i in range(len(self.bracket_sizes))]
        self._add_brackets(self.bracket_sizes, self.bracket_rungs, labels)

    def state(self) -> dict[str, Any]:
        return {**super().state(), "name": "hyperband", "min_epochs": self.min_epochs}
