"""Grid search: one trial per point of the Cartesian product of the search space."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cerebro_spark.search.base import SearchAlgorithm, Trial, check_positive_int, make_model_id
from cerebro_spark.search.space import describe_space, grid, validate_space


class GridSearchAlgorithm(SearchAlgorithm):
    """Train every configuration of ``space`` for ``num_epochs`` epochs.

    Parameters
    ----------
    space : Mapping[str, Any]
        Name -> dimension (``hp_choice`` or a q-dimension) or constant.
    num_epochs : int
        Epochs per model (>= 1).

    Raises
    ------
    SearchSpaceError
        If ``space`` is invalid or has a continuous dimension.
    InvalidParamError
        If ``num_epochs`` is not an int >= 1.

    Examples
    --------
    >>> from cerebro_spark.search import hp_choice
    >>> algo = GridSearchAlgorithm({"lr": hp_choice([0.1, 0.01]), "bs": 32}, num_epochs=2)
    >>> [(t.model_id, t.params) for t in algo.initial_trials()]
    [('m0000', {'lr': 0.1, 'bs': 32}), ('m0001', {'lr': 0.01, 'bs': 32})]
    """

    def __init__(self, space: Mapping[str, Any], num_epochs: int) -> None:
        self.num_epochs = check_positive_int("num_epochs", num_epochs)
        self.space = validate_space(space)
        self._configs = grid(self.space)

    def initial_trials(self) -> list[Trial]:
        return [Trial(make_model_id(i), dict(params)) for i, params in enumerate(self._configs)]

    def state(self) -> dict[str, Any]:
        return {
            **super().state(),
            "name": "grid",
            "num_models": len(self._configs),
            "space": describe_space(self.space),
        }
