"""TPE (Bayesian) search with Optuna's ``TPESampler`` through ask/tell, proposing asynchronously.

Optuna is an optional extra (``pip install 'cerebro_spark[tune]'``), imported only when a
:class:`TPEAlgorithm` is made.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from cerebro_spark.errors import MissingDependencyError, SearchSpaceError
from cerebro_spark.search._rungs import check_metric, check_seed, metric_value
from cerebro_spark.search.base import Decision, SearchAlgorithm, Trial, check_positive_int, make_model_id
from cerebro_spark.search.metrics import is_better
from cerebro_spark.search.space import (
    Choice,
    Dimension,
    IntRange,
    LogUniform,
    QLogUniform,
    QUniform,
    Repeat,
    Uniform,
    describe_space,
    validate_space,
)


def _import_optuna() -> Any:
    try:
        import optuna
    except ImportError as err:
        raise MissingDependencyError(
            "TPEAlgorithm needs Optuna, which is not installed: pip install 'cerebro_spark[tune]'"
        ) from err
    return optuna


def _suggest(trial: Any, name: str, dim: Any) -> Any:
    """Ask the Optuna ``trial`` for a value of ``dim`` (choices by option index).

    Nested spaces are asked define-by-run: only the chosen branch's dimensions are suggested, each
    under its path (``arch/1.layers``, ``widths[0]``), so TPE models each branch's parameters apart.
    """
    if isinstance(dim, Choice):
        index = trial.suggest_categorical(name, list(range(len(dim.options))))
        return _suggest(trial, f"{name}/{index}", dim.options[index])
    if isinstance(dim, Repeat):
        length = int(_suggest(trial, f"{name}/length", dim.length))
        return [_suggest(trial, f"{name}[{j}]", dim.item) for j in range(length)]
    if isinstance(dim, IntRange):
        return trial.suggest_int(name, dim.low, dim.high)
    if isinstance(dim, Mapping):
        return {k: _suggest(trial, f"{name}.{k}", v) for k, v in dim.items()}
    if isinstance(dim, (list, tuple)):
        return type(dim)(_suggest(trial, f"{name}[{j}]", v) for j, v in enumerate(dim))
    if not isinstance(dim, Dimension):
        return dim  # a constant inside a nested space
    if isinstance(dim, QLogUniform):
        k_min, k_max = dim._k_range()
        raw = trial.suggest_float(name, dim.low, dim.high, log=True)
        return dim._value(min(max(round(raw / dim.q), k_min), k_max))
    if isinstance(dim, QUniform):
        k_min, k_max = dim._k_range()
        if all(isinstance(v, int) for v in (dim.low, dim.high, dim.q)):
            return trial.suggest_int(name, dim._value(k_min), dim._value(k_max), step=int(dim.q))
        return dim._value(trial.suggest_int(f"{name}/q", k_min, k_max))
    if isinstance(dim, LogUniform):
        return trial.suggest_float(name, dim.low, dim.high, log=True)
    if isinstance(dim, Uniform):
        return trial.suggest_float(name, dim.low, dim.high)
    raise SearchSpaceError(f"TPEAlgorithm cannot map dimension {dim!r} of {name!r} to Optuna.")


class TPEAlgorithm(SearchAlgorithm):
    """Propose configurations with Optuna's TPE from the results so far, keeping workers busy.

    ``max_concurrent`` trials start at once; each time a model ends (completed or failed) Optuna is
    told its result (the best epoch's ``metric``) and asked for the next configuration, until
    ``num_models`` were proposed. ``hp_choice`` is searched over option indices (options may be any
    object); ``hp_uniform``/``hp_loguniform`` as floats (log scale for the latter); ``hp_quniform``
    over its multiples of ``q``; ``hp_qloguniform`` on a log scale, rounded to ``q`` inside bounds.

    Parameters
    ----------
    space : Mapping[str, Any]
        Name -> dimension or constant.
    num_models : int
        Configurations to propose in all (>= 1).
    num_epochs : int
        Epochs per model (>= 1).
    seed : int
        Seed of the sampler (>= 0).
    metric : str
        The metric to optimize, e.g. ``"val_loss"``.
    mode : {"min", "max", "auto"}
        The study's direction (minimize or maximize).
    max_concurrent : int
        Models live at once (>= 1); the Spark ML layer passes twice the number of workers.

    Raises
    ------
    MissingDependencyError
        If Optuna is not installed (``pip install 'cerebro_spark[tune]'``).
    InvalidParamError
        If a count, ``seed``, ``metric`` or ``mode`` is invalid.

    Examples
    --------
    >>> from cerebro_spark.search import hp_loguniform
    >>> algo = TPEAlgorithm({"lr": hp_loguniform(1e-4, 1e-1)}, num_models=8, num_epochs=2, seed=0,
    ...                     metric="val_loss", mode="min", max_concurrent=2)
    >>> [t.model_id for t in algo.initial_trials()]
    ['m0000', 'm0001']
    """

    def __init__(
        self,
        space: Mapping[str, Any],
        *,
        num_models: int,
        num_epochs: int,
        seed: int,
        metric: str,
        mode: str,
        max_concurrent: int,
    ) -> None:
        optuna = _import_optuna()
        self.num_models = check_positive_int("num_models", num_models)
        self.num_epochs = check_positive_int("num_epochs", num_epochs)
        self.max_concurrent = min(check_positive_int("max_concurrent", max_concurrent), self.num_models)
        self.seed = check_seed(seed)
        self.metric, self.mode = check_metric(metric, mode)
        self.space = validate_space(space)
        self._failed_state = optuna.trial.TrialState.FAIL
        self._study = optuna.create_study(
            sampler=optuna.samplers.TPESampler(seed=self.seed),
            direction="minimize" if self.mode == "min" else "maximize",
        )
        self._asked: dict[str, Any] = {}
        self._best: dict[str, float] = {}
        self.told: dict[str, float | None] = {}
        self._initial = [self._ask() for _ in range(self.max_concurrent)]

    def _ask(self) -> Trial:
        model_id = make_model_id(len(self._asked))
        optuna_trial = self._study.ask()
        self._asked[model_id] = optuna_trial
        return Trial(model_id, {name: _suggest(optuna_trial, name, dim) for name, dim in self.space.items()})

    def initial_trials(self) -> list[Trial]:
        return list(self._initial)

    @property
    def num_proposed(self) -> int:
        """Configurations proposed so far (at most ``num_models``)."""
        return len(self._asked)

    def on_epoch_end(self, model_id: str, epoch: int, metrics: Mapping[str, float]) -> Decision:
        value = metric_value(metrics, self.metric, model_id)
        if is_better(value, self._best.get(model_id), self.mode):
            self._best[model_id] = value
        if epoch < self.num_epochs:
            return Decision()
        best = self._best.get(model_id)
        self._tell(model_id, best)
        return Decision(stop=True, reason=f"completed {self.num_epochs} epochs", new_trials=self._next())

    def on_model_failed(self, model_id: str, error: str) -> Decision:
        if model_id not in self._asked or model_id in self.told:
            return Decision()
        self._tell(model_id, None)
        return Decision(new_trials=self._next())

    def _tell(self, model_id: str, value: float | None) -> None:
        """Tell Optuna the model's best value; None or NaN (no usable epoch) is told as a failure."""
        if value is None or math.isnan(value):
            self._study.tell(self._asked[model_id], state=self._failed_state)
            self.told[model_id] = None
        else:
            self._study.tell(self._asked[model_id], value)
            self.told[model_id] = value

    def _next(self) -> tuple[Trial, ...]:
        return (self._ask(),) if len(self._asked) < self.num_models else ()

    def state(self) -> dict[str, Any]:
        return {
            **super().state(),
            "name": "tpe",
            "num_models": self.num_models,
            "max_concurrent": self.max_concurrent,
            "metric": self.metric,
            "mode": self.mode,
            "seed": self.seed,
            "space": describe_space(self.space),
            "told": dict(self.told),
        }
