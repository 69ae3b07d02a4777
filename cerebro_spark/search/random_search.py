"""Random search: ``num_models`` configurations sampled from the search space with a seed."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from cerebro_spark.errors import InvalidParamError
from cerebro_spark.search.base import SearchAlgorithm, Trial, check_positive_int, make_model_id
from cerebro_spark.search.space import describe_space, sample, validate_space


class RandomSearchAlgorithm(SearchAlgorithm):
    """Train ``num_models`` configurations drawn from ``space`` for ``num_epochs`` epochs.

    Parameters
    ----------
    space : Mapping[str, Any]
        Name -> dimension or constant.
    num_models : int
        Number of configurations to draw (>= 1).
    num_epochs : int
        Epochs per model (>= 1).
    seed : int or None, optional
        Decides the configurations. None (the default) draws a fresh seed, recorded in
        :meth:`state` and as ``self.seed`` so the search can be repeated.

    Raises
    ------
    SearchSpaceError
        If ``space`` is invalid.
    InvalidParamError
        If ``num_models`` or ``num_epochs`` is not an int >= 1, or ``seed`` not a non-negative int.

    Examples
    --------
    >>> from cerebro_spark.search import hp_loguniform
    >>> algo = RandomSearchAlgorithm({"lr": hp_loguniform(1e-4, 1e-1)}, num_models=3, num_epochs=2, seed=7)
    >>> [t.model_id for t in algo.initial_trials()]
    ['m0000', 'm0001', 'm0002']
    """

    def __init__(
        self, space: Mapping[str, Any], num_models: int, num_epochs: int, seed: int | None = None
    ) -> None:
        self.num_models = check_positive_int("num_models", num_models)
        self.num_epochs = check_positive_int("num_epochs", num_epochs)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise InvalidParamError(f"seed must be a non-negative int or None. Received: seed={seed!r}")
        self.seed: int = random.SystemRandom().randrange(2**63) if seed is None else seed
        self.space = validate_space(space)

    def initial_trials(self) -> list[Trial]:
        configs = sample(self.space, self.num_models, self.seed)
        return [Trial(make_model_id(i), params) for i, params in enumerate(configs)]

    def state(self) -> dict[str, Any]:
        return {
            **super().state(),
            "name": "random",
            "num_models": self.num_models,
            "seed": self.seed,
            "space": describe_space(self.space),
        }
