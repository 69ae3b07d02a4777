"""Whether a metric is minimized or maximized, and comparisons that respect it.

``infer_mode`` knows Keras' metric names (with an optional ``val_``/``train_`` prefix and the
``_1``, ``_2`` suffixes Keras adds to repeated metrics). NaN is never better than anything.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Literal

from cerebro_spark.errors import InvalidParamError

Mode = Literal["min", "max"]

_MIN_NAMES = frozenset(
    {"loss", "mse", "mae", "mape", "msle", "hinge", "kld", "kl_divergence", "poisson", "logcosh", "huber"}
)
_MAX_NAMES = frozenset({"accuracy", "acc", "auc", "precision", "recall", "f1", "r2", "r2_score"})
# checked in order, after the exact names: the first pattern that matches decides
_PATTERNS: tuple[tuple[re.Pattern[str], Mode], ...] = (
    (re.compile(r"_loss$"), "min"),
    (re.compile(r"_accuracy$|f1_score$"), "max"),
    (re.compile(r"crossentropy|error|hinge$"), "min"),
    (re.compile(r"iou"), "max"),
)


def infer_mode(metric: str) -> Mode:
    """Return ``"min"`` for loss-like metrics and ``"max"`` for score-like ones.

    Parameters
    ----------
    metric : str
        A metric name such as ``"val_loss"`` or ``"val_sparse_categorical_accuracy"``.

    Raises
    ------
    InvalidParamError
        If the name is not one this function knows.

    Examples
    --------
    >>> infer_mode("val_accuracy"), infer_mode("val_binary_crossentropy")
    ('max', 'min')
    """
    if not isinstance(metric, str):
        raise InvalidParamError(f"metric must be a str. Received: metric={metric!r}")
    name = re.sub(r"_\d+$", "", re.sub(r"^(val_|train_)", "", metric.lower()))
    if name in _MIN_NAMES:
        return "min"
    if name in _MAX_NAMES:
        return "max"
    for pattern, mode in _PATTERNS:
        if pattern.search(name):
            return mode
    raise InvalidParamError(
        f"The mode cannot be inferred for metric {metric!r}: pass mode='min' or mode='max'."
    )


def resolve_mode(metric: str, mode: str) -> Mode:
    """Return ``mode``, or the inferred one when ``mode`` is ``"auto"``.

    Parameters
    ----------
    metric : str
        The metric name, used only when ``mode`` is ``"auto"``.
    mode : {"auto", "min", "max"}
        The mode asked for.

    Raises
    ------
    InvalidParamError
        If ``mode`` is not ``"auto"``, ``"min"`` or ``"max"``, or ``"auto"`` cannot infer it.

    Examples
    --------
    >>> resolve_mode("val_loss", "auto"), resolve_mode("val_loss", "max")
    ('min', 'max')
    """
    if mode == "auto":
        return infer_mode(metric)
    if mode == "min":
        return "min"
    if mode == "max":
        return "max"
    raise InvalidParamError(f"mode must be 'auto', 'min' or 'max'. Received: mode={mode!r}")


def _check_mode(mode: str) -> None:
    if mode not in ("min", "max"):
        raise InvalidParamError(f"mode must be 'min' or 'max'. Received: mode={mode!r}")


def is_better(a: float, b: float | None, mode: Mode) -> bool:
    """Return True if ``a`` is strictly better than ``b``: NaN never is; anything else beats None or NaN.

    Parameters
    ----------
    a : float
        The candidate value.
    b : float or None
        The value to beat; None when there is none yet.
    mode : {"min", "max"}
        Whether smaller or larger is better.

    Raises
    ------
    InvalidParamError
        If ``mode`` is not ``"min"`` or ``"max"``.

    Examples
    --------
    >>> is_better(0.2, 0.3, "min"), is_better(0.2, None, "max"), is_better(float("nan"), None, "min")
    (True, True, False)
    """
    _check_mode(mode)
    if math.isnan(a):
        return False
    if b is None or math.isnan(b):
        return True
    return a < b if mode == "min" else a > b


def best_index(values: Sequence[float], mode: Mode) -> int | None:
    """Return the index of the best value (the earliest among ties), ignoring NaN; None if there is none.

    Parameters
    ----------
    values : Sequence[float]
        Metric values, e.g. one per epoch or one per model.
    mode : {"min", "max"}
        Whether smaller or larger is better.

    Raises
    ------
    InvalidParamError
        If ``mode`` is not ``"min"`` or ``"max"``.

    Examples
    --------
    >>> best_index([0.5, 0.9, float("nan"), 0.9], "max")
    1
    """
    _check_mode(mode)
    best: int | None = None
    for i, value in enumerate(values):
        if is_better(value, None if best is None else values[best], mode):
            best = i
    return best
