"""What the early-stopping algorithms share: argument checks, rung epochs, ranking, metric lookup."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from cerebro_spark.errors import InvalidParamError
from cerebro_spark.search.base import check_positive_int
from cerebro_spark.search.metrics import Mode, resolve_mode


def check_seed(seed: Any) -> int:
    """Return ``seed`` if it is a non-negative int, else raise :class:`InvalidParamError`."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidParamError(f"seed must be a non-negative int. Received: seed={seed!r}")
    return seed


def check_epoch_range(min_epochs: Any, max_epochs: Any) -> tuple[int, int]:
    """Return ``(min_epochs, max_epochs)`` if both are ints >= 1 with ``min_epochs <= max_epochs``."""
    low = check_positive_int("min_epochs", min_epochs)
    high = check_positive_int("max_epochs", max_epochs)
    if low > high:
        raise InvalidParamError(
            f"min_epochs must be <= max_epochs. Received: min_epochs={low!r}, max_epochs={high!r}"
        )
    return low, high


def check_reduction_factor(reduction_factor: Any) -> int:
    """Return ``reduction_factor`` if it is an int >= 2."""
    value = reduction_factor
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        raise InvalidParamError(f"reduction_factor must be an int >= 2. Received: reduction_factor={value!r}")
    return value


def check_metric(metric: Any, mode: Any) -> tuple[str, Mode]:
    """Return the metric name and its resolved mode (``"auto"`` infers it from the name)."""
    if not isinstance(metric, str) or not metric:
        raise InvalidParamError(
            f"metric must be a non-empty str such as 'val_loss'. Received: metric={metric!r}"
        )
    return metric, resolve_mode(metric, mode)


def rung_epochs(min_epochs: int, max_epochs: int, eta: int) -> list[int]:
    """Epochs ``min_epochs * eta**k`` below ``max_epochs``: where models are compared.

    Models that pass the last of them train to ``max_epochs``.

    Examples
    --------
    >>> rung_epochs(1, 9, 3), rung_epochs(1, 10, 3), rung_epochs(2, 2, 3)
    ([1, 3], [1, 3, 9], [])
    """
    rungs, epoch = [], min_epochs
    while epoch < max_epochs:
        rungs.append(epoch)
        epoch *= eta
    return rungs


def metric_value(metrics: Mapping[str, float], metric: str, model_id: str) -> float:
    """``metrics[metric]`` as a float, or an :class:`InvalidParamError` naming the metrics there are."""
    if metric not in metrics:
        raise InvalidParamError(
            f"The metric {metric!r} is not among the metrics of model {model_id!r}: {sorted(metrics)}. "
            "Pass one of those as the metric."
        )
    return float(metrics[metric])


def ranked(results: Mapping[str, float], mode: Mode) -> list[str]:
    """Model ids from best to worst; NaN last; ties broken by model id (deterministic).

    Examples
    --------
    >>> ranked({"m2": 0.5, "m1": 0.5, "m0": float("nan"), "m3": 0.1}, "min")
    ['m3', 'm1', 'm2', 'm0']
    """

    def key(model_id: str) -> tuple[bool, float, str]:
        value = results[model_id]
        if math.isnan(value):
            return True, 0.0, model_id
        return False, value if mode == "min" else -value, model_id

    return sorted(results, key=key)


def format_value(value: float) -> str:
    """A metric value as reasons show it (4 significant digits)."""
    return f"{value:.4g}"
