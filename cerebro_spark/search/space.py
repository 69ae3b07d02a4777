"""Search spaces: dimensions, their constructors, validation, grids and seeded sampling.

One meaning for every algorithm: bounds are *values*, never exponents. ``hp_loguniform(1e-4, 1e-1)``
draws learning rates between 0.0001 and 0.1. (Upstream tools such as hyperopt took exponents.)
The ``q`` variants round to the nearest multiple of ``q`` inside ``[low, high]`` and return ints
when ``low``, ``high`` and ``q`` are all ints.

Spaces may be conditional and nested: an ``hp_choice`` option, or a constant, may be a dict or a
list that holds further dimensions (only the chosen branch is drawn), and :func:`hp_repeat` makes a
list whose length is itself searched (a number of layers and a width per layer). Every dimension
draws from its own random stream, named by its path in the space (``"arch/1.layers"``), so adding a
dimension or a branch leaves the values of the others unchanged.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import numbers
import random
import warnings
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

import numpy as np

from cerebro_spark._json import jsonable
from cerebro_spark.errors import InvalidParamError, SearchSpaceError

#: Largest number of values a q-dimension may enumerate for a grid.
MAX_GRID_VALUES = 100_000


def _plain(value: Any) -> Any:
    """Return ``value`` as a plain Python object (numpy scalars become int/float/bool/str)."""
    return value.item() if isinstance(value, np.generic) else value


def _check_number(primitive: str, name: str, value: Any, received: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise SearchSpaceError(f"{primitive}: {name} must be a finite number. Received: {received}")
    return _plain(value)  # type: ignore[no-any-return]


class Dimension(ABC):
    """One hyperparameter's set of values: sampled by random search, enumerated by grid search."""

    __slots__ = ()

    @abstractmethod
    def sample(self, rng: np.random.Generator, size: int) -> list[Any]:
        """Draw ``size`` values from ``rng`` as plain Python objects."""

    @abstractmethod
    def grid_values(self) -> list[Any]:
        """Return every value, in order, for a grid (discrete dimensions only)."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Return a JSON-able description, for the run record."""


@dataclass(frozen=True, slots=True, repr=False)
class Choice(Dimension):
    """One of ``options``, each with equal probability. Made by :func:`hp_choice`."""

    options: tuple[Any, ...]

    def __post_init__(self) -> None:
        if not self.options:
            raise SearchSpaceError("hp_choice needs at least one option. Received: options=()")

    def __repr__(self) -> str:
        return f"hp_choice({list(self.options)!r})"

    def sample(self, rng: np.random.Generator, size: int) -> list[Any]:
        if is_nested(self):  # draw the chosen branches' dimensions from streams derived from rng
            base = int(rng.integers(0, 2**63))
            return [_draw(self, "", _Streams(base, i)) for i in range(size)]
        return [self.options[i] for i in rng.integers(0, len(self.options), size=size)]

    def grid_values(self) -> list[Any]:
        return [value for option in self.options for value in _expand(option)]

    def describe(self) -> dict[str, Any]:
        return {"type": "choice", "options": [_jsonable(o) for o in self.options]}


@dataclass(frozen=True, slots=True, repr=False)
class _Interval(Dimension):
    """Shared validation of ``[low, high]`` (and ``q``) for the numeric dimensions."""

    low: float
    high: float
    primitive: ClassVar[str] = ""

    def __post_init__(self) -> None:
        received = self._received()
        low = _check_number(self.primitive, "low", self.low, received)
        high = _check_number(self.primitive, "high", self.high, received)
        if low >= high:
            raise SearchSpaceError(f"{self.primitive}: low must be < high. Received: {received}")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    def _received(self) -> str:
        return f"low={self.low!r}, high={self.high!r}"

    def __repr__(self) -> str:
        return f"{self.primitive}({self._received()})"

    def grid_values(self) -> list[Any]:
        raise SearchSpaceError(
            f"{self!r} is continuous: GridSearch needs hp_choice or a q-dimension "
            "(hp_quniform, hp_qloguniform) for every key."
        )

    def describe(self) -> dict[str, Any]:
        return {"type": self.primitive.removeprefix("hp_"), "low": self.low, "high": self.high}


_LOG_EXAMPLES = {
    "hp_loguniform": "hp_loguniform(1e-4, 1e-1) samples between 0.0001 and 0.1",
    "hp_qloguniform": "hp_qloguniform(8, 512, 8) samples multiples of 8 between 8 and 512",
}


def _check_log_bounds(dim: _Interval) -> None:
    if dim.low <= 0:
        raise SearchSpaceError(
            f"{dim.primitive}: bounds are values, not exponents (unlike hyperopt), and must be > 0: "
            f"e.g. {_LOG_EXAMPLES[dim.primitive]}. Received: {dim._received()}"
        )


@dataclass(frozen=True, slots=True, repr=False)
class Uniform(_Interval):
    """A float drawn uniformly from ``[low, high)``. Made by :func:`hp_uniform`."""

    primitive: ClassVar[str] = "hp_uniform"

    def sample(self, rng: np.random.Generator, size: int) -> list[Any]:
        return [float(x) for x in rng.uniform(self.low, self.high, size=size)]


@dataclass(frozen=True, slots=True, repr=False)
class LogUniform(_Interval):
    """``exp(U(log low, log high))``: a float whose log is uniform. Made by :func:`hp_loguniform`."""

    primitive: ClassVar[str] = "hp_loguniform"

    def __post_init__(self) -> None:
        _Interval.__post_init__(self)
        _check_log_bounds(self)
        if all(isinstance(v, numbers.Integral) for v in (self.low, self.high)) and self.high <= 10:
            warnings.warn(
                f"hp_loguniform({self.low}, {self.high}) draws values from {self.low} to {self.high}. Its bounds "
                "are values, not exponents: upstream Cerebro's and hyperopt's took exponents. For "
                f"10**{self.low} to 10**{self.high} write hp_loguniform({10**self.low:g}, {10**self.high:g}); "
                "write float bounds to silence this warning.",
                UserWarning,
                stacklevel=4,
            )

    def sample(self, rng: np.random.Generator, size: int) -> list[Any]:
        draws = np.exp(rng.uniform(math.log(self.low), math.log(self.high), size=size))
        return [float(x) for x in np.clip(draws, self.low, self.high)]


@dataclass(frozen=True, slots=True, repr=False)
class QUniform(_Interval):
    """:class:`Uniform` rounded to the nearest multiple of ``q`` in range. Made by :func:`hp_quniform`."""

    q: float = 1.0
    primitive: ClassVar[str] = "hp_quniform"

    def __post_init__(self) -> None:
        _Interval.__post_init__(self)
        q = _check_number(self.primitive, "q", self.q, self._received())
        if q <= 0:
            raise SearchSpaceError(f"{self.primitive}: q must be > 0. Received: {self._received()}")
        object.__setattr__(self, "q", q)
        k_min, k_max = self._k_range()
        if k_min > k_max:
            raise SearchSpaceError(
                f"{self.primitive}: no multiple of q lies in [low, high]. Received: {self._received()}"
            )

    def _received(self) -> str:
        return f"low={self.low!r}, high={self.high!r}, q={self.q!r}"

    def _value(self, k: int) -> Any:
        """``k * q``: an int when low, high and q are ints, else a float rounded to q's decimals."""
        if all(isinstance(v, int) for v in (self.low, self.high, self.q)):
            return k * int(self.q)
        exponent = Decimal(repr(float(self.q))).as_tuple().exponent
        return round(k * self.q, max(0, -int(exponent)))

    def _k_range(self) -> tuple[int, int]:
        """The smallest and largest k with ``k * q`` in ``[low, high]`` (tolerating float noise)."""
        k_min = math.ceil(self.low / self.q - 1e-9)
        k_max = math.floor(self.high / self.q + 1e-9)
        return k_min + (self._value(k_min) < self.low), k_max - (self._value(k_max) > self.high)

    def _quantize(self, draws: np.ndarray) -> list[Any]:
        k_min, k_max = self._k_range()
        return [self._value(int(k)) for k in np.clip(np.round(draws / self.q), k_min, k_max)]

    def _raw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.uniform(self.low, self.high, size=size)

    def sample(self, rng: np.random.Generator, size: int) -> list[Any]:
        return self._quantize(self._raw(rng, size))

    def grid_values(self) -> list[Any]:
        k_min, k_max = self._k_range()
        if k_max - k_min + 1 > MAX_GRID_VALUES:
            raise SearchSpaceError(
                f"{self!r} has {k_max - k_min + 1} grid values, more than {MAX_GRID_VALUES}: use a larger q."
            )
        return [self._value(k) for k in range(k_min, k_max + 1)]

    def describe(self) -> dict[str, Any]:
        return {**_Interval.describe(self), "q": self.q}


@dataclass(frozen=True, slots=True, repr=False)
class QLogUniform(QUniform):
    """:class:`LogUniform` rounded like :class:`QUniform`. Made by :func:`hp_qloguniform`."""

    primitive: ClassVar[str] = "hp_qloguniform"

    def __post_init__(self) -> None:
        QUniform.__post_init__(self)
        _check_log_bounds(self)

    def _raw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return np.exp(rng.uniform(math.log(self.low), math.log(self.high), size=size))


@dataclass(frozen=True, slots=True, repr=False)
class IntRange(Dimension):
    """An int drawn uniformly from ``low..high``, both included. Made by :func:`hp_randint`."""

    low: int
    high: int

    def __post_init__(self) -> None:
        received = f"low={self.low!r}, high={self.high!r}"
        for name in ("low", "high"):
            value = _plain(getattr(self, name))
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise SearchSpaceError(f"hp_randint: {name} must be an int. Received: {received}")
            object.__setattr__(self, name, int(value))
        if self.low > self.high:
            raise SearchSpaceError(f"hp_randint: low must be <= high. Received: {received}")

    def __repr__(self) -> str:
        return f"hp_randint({self.low!r}, {self.high!r})"

    def sample(self, rng: np.random.Generator, size: int) -> list[Any]:
        return [int(x) for x in rng.integers(self.low, self.high + 1, size=size)]

    def grid_values(self) -> list[Any]:
        if self.high - self.low + 1 > MAX_GRID_VALUES:
            raise SearchSpaceError(f"{self!r} has more than {MAX_GRID_VALUES} grid values.")
        return list(range(self.low, self.high + 1))

    def describe(self) -> dict[str, Any]:
        return {"type": "randint", "low": self.low, "high": self.high}


@dataclass(frozen=True, slots=True, repr=False)
class Repeat(Dimension):
    """A list of ``length`` values, each drawn independently from ``item``. Made by :func:`hp_repeat`."""

    length: Any
    item: Any

    def __post_init__(self) -> None:
        lengths = _expand(self.length)
        if not lengths or any(
            isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0 for n in lengths
        ):
            raise SearchSpaceError(
                "hp_repeat: length must be a non-negative int or a dimension of them (hp_randint, "
                f"hp_choice of ints). Received: length={self.length!r}"
            )

    def __repr__(self) -> str:
        return f"hp_repeat({self.length!r}, {self.item!r})"

    def sample(self, rng: np.random.Generator, size: int) -> list[Any]:
        base = int(rng.integers(0, 2**63))
        return [_draw(self, "", _Streams(base, i)) for i in range(size)]

    def grid_values(self) -> list[Any]:
        items = _expand(self.item)
        values: list[Any] = []
        for n in _expand(self.length):
            values.extend(list(combo) for combo in itertools.product(items, repeat=int(n)))
            if len(values) > MAX_GRID_VALUES:
                raise SearchSpaceError(f"{self!r} has more than {MAX_GRID_VALUES} grid values.")
        return values

    def describe(self) -> dict[str, Any]:
        return {"type": "repeat", "length": _jsonable(self.length), "item": _jsonable(self.item)}


class _Streams:
    """One seeded generator per path in the space, for one configuration (``index``)."""

    def __init__(self, base: int, index: int) -> None:
        self.base, self.index = base, index
        self._rngs: dict[str, np.random.Generator] = {}

    def rng(self, path: str) -> np.random.Generator:
        if path not in self._rngs:
            entropy = [self.base, stable_hash(path), self.index]
            self._rngs[path] = np.random.default_rng(np.random.SeedSequence(entropy))
        return self._rngs[path]


def is_nested(value: Any) -> bool:
    """True if ``value`` holds a dimension below its top (a conditional or nested space)."""
    if isinstance(value, Choice):
        return any(_has_dimension(option) for option in value.options)
    if isinstance(value, Repeat):
        return True
    return not isinstance(value, Dimension) and _has_dimension(value)


def _has_dimension(value: Any) -> bool:
    if isinstance(value, Dimension):
        return True
    if isinstance(value, Mapping):
        return any(_has_dimension(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_dimension(v) for v in value)
    return False


def _draw(value: Any, path: str, streams: _Streams) -> Any:
    """Resolve every dimension in ``value`` (only the chosen branches), each from its path's stream."""
    if isinstance(value, Choice):
        index = int(streams.rng(path).integers(0, len(value.options)))
        return _draw(value.options[index], f"{path}/{index}", streams)
    if isinstance(value, Repeat):
        length = int(_draw(value.length, f"{path}/length", streams))
        return [_draw(value.item, f"{path}[{j}]", streams) for j in range(length)]
    if isinstance(value, Dimension):
        return value.sample(streams.rng(path), 1)[0]
    if isinstance(value, Mapping):
        return {k: _draw(v, f"{path}.{k}", streams) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_draw(v, f"{path}[{j}]", streams) for j, v in enumerate(value))
    return value


def _expand(value: Any) -> list[Any]:
    """Every value ``value`` can take, in order (a nested grid); continuous dimensions raise."""
    if isinstance(value, Dimension):
        return value.grid_values()
    if isinstance(value, Mapping):
        keys = list(value)
        return [
            dict(zip(keys, combo, strict=True))
            for combo in itertools.product(*(_expand(value[k]) for k in keys))
        ]
    if isinstance(value, (list, tuple)):
        return [type(value)(combo) for combo in itertools.product(*(_expand(v) for v in value))]
    return [value]


def hp_choice(options: Sequence[Any]) -> Choice:
    """One of ``options``, each equally likely; a grid takes them in the given order.

    Parameters
    ----------
    options : list or tuple
        The values (any objects, at least one). numpy scalars become plain Python numbers.

    Returns
    -------
    Choice

    Raises
    ------
    SearchSpaceError
        If ``options`` is not a list or tuple, or is empty.

    Examples
    --------
    >>> hp_choice([32, 64]).grid_values()
    [32, 64]
    """
    if isinstance(options, (str, bytes)) or not isinstance(options, Sequence):
        raise SearchSpaceError(f"hp_choice needs a list or tuple of options. Received: options={options!r}")
    if len(options) == 0:
        raise SearchSpaceError(f"hp_choice needs at least one option. Received: options={options!r}")
    return Choice(tuple(_plain(o) for o in options))


def hp_uniform(low: float, high: float) -> Uniform:
    """A float drawn uniformly from ``[low, high)``; continuous, so not for grid search.

    Parameters
    ----------
    low, high : float
        Finite bounds, ``low < high``.

    Returns
    -------
    Uniform

    Raises
    ------
    SearchSpaceError
        If a bound is not a finite number or ``low >= high``.

    Examples
    --------
    >>> hp_uniform(0.0, 0.5).sample(np.random.default_rng(0), 2)  # doctest: +ELLIPSIS
    [0.318..., 0.134...]
    """
    return Uniform(low, high)


def hp_quniform(low: float, high: float, q: float) -> QUniform:
    """``round(U(low, high) / q) * q``, kept inside ``[low, high]``; usable in a grid.

    Parameters
    ----------
    low, high : float
        Finite bounds, ``low < high``, with at least one multiple of ``q`` between them.
    q : float
        The step (> 0). Values are ints when ``low``, ``high`` and ``q`` are all ints, else floats
        rounded to ``q``'s decimals (``0.3``, not ``0.30000000000000004``).

    Returns
    -------
    QUniform

    Raises
    ------
    SearchSpaceError
        If a bound or ``q`` is not a finite number, ``low >= high``, ``q <= 0``, or no multiple of
        ``q`` lies in ``[low, high]``.

    Examples
    --------
    >>> hp_quniform(16, 64, 16).grid_values()
    [16, 32, 48, 64]
    """
    return QUniform(low, high, q)


def hp_loguniform(low: float, high: float) -> LogUniform:
    """``exp(U(log low, log high))``: a float whose logarithm is uniform; not for grid search.

    Parameters
    ----------
    low, high : float
        The bounds as values, not exponents: ``0 < low < high``. For learning rates between
        0.0001 and 0.1 write ``hp_loguniform(1e-4, 1e-1)`` (hyperopt would take ``-9.2, -2.3``).

    Returns
    -------
    LogUniform

    Raises
    ------
    SearchSpaceError
        If a bound is not a finite number, ``low <= 0`` or ``low >= high``.

    Examples
    --------
    >>> 1e-4 <= hp_loguniform(1e-4, 1e-1).sample(np.random.default_rng(0), 1)[0] <= 1e-1
    True
    """
    return LogUniform(low, high)


def hp_qloguniform(low: float, high: float, q: float) -> QLogUniform:
    """:func:`hp_loguniform` rounded like :func:`hp_quniform`; usable in a grid.

    Parameters
    ----------
    low, high : float
        The bounds as values, not exponents: ``0 < low < high``.
    q : float
        The step (> 0); ints when ``low``, ``high`` and ``q`` are all ints.

    Returns
    -------
    QLogUniform

    Raises
    ------
    SearchSpaceError
        As :func:`hp_quniform`, and if ``low <= 0``.

    Examples
    --------
    >>> hp_qloguniform(8, 64, 8).grid_values()
    [8, 16, 24, 32, 40, 48, 56, 64]
    """
    return QLogUniform(low, high, q)


def hp_randint(low: int, high: int) -> IntRange:
    """An int drawn uniformly from ``low..high``, **both included**; a grid takes every int in order.

    Parameters
    ----------
    low, high : int
        The bounds, ``low <= high``.

    Returns
    -------
    IntRange

    Raises
    ------
    SearchSpaceError
        If a bound is not an int or ``low > high``.

    Examples
    --------
    >>> hp_randint(1, 3).grid_values()
    [1, 2, 3]
    """
    return IntRange(low, high)


def hp_repeat(length: Any, item: Any) -> Repeat:
    """A list of ``length`` values, each drawn independently from ``item``: e.g. a width per layer.

    Parameters
    ----------
    length : int or Dimension
        The list's length: a non-negative int, or a dimension of them (``hp_randint(1, 3)``).
    item : Any
        What each element is drawn from: a dimension, a constant, or a dict/list holding dimensions.

    Returns
    -------
    Repeat

    Raises
    ------
    SearchSpaceError
        If ``length`` can take a value that is not a non-negative int.

    Examples
    --------
    >>> hp_repeat(hp_randint(1, 2), hp_choice([16, 32])).grid_values()
    [[16], [32], [16, 16], [16, 32], [32, 16], [32, 32]]
    """
    return Repeat(length, item)


def _jsonable(value: Any) -> Any:
    """A value of a space as its description shows it: a dimension by its own description."""
    return jsonable(value, lambda v: v.describe() if isinstance(v, Dimension) else repr(v))


def flatten_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Flatten nested dicts to dotted keys, for tables and trackers: ``{"arch.kind": "mlp", ...}``.

    Examples
    --------
    >>> flatten_params({"arch": {"kind": "mlp", "layers": 2}, "lr": 0.1})
    {'arch.kind': 'mlp', 'arch.layers': 2, 'lr': 0.1}
    """
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, Mapping) and value:
            flat.update({f"{key}.{k}": v for k, v in flatten_params(value).items()})
        else:
            flat[str(key)] = value
    return flat


def stable_hash(name: str) -> int:
    """Return a 64-bit hash of ``name`` that is the same in every process (unlike ``hash``)."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big")


def validate_space(space: Mapping[str, Any]) -> dict[str, Dimension]:
    """Check ``space`` and return it as ``{name: Dimension}``; a plain value is a constant.

    Parameters
    ----------
    space : Mapping[str, Any]
        Name -> dimension (``hp_*``) or constant (any other value, a one-option ``hp_choice``). A
        constant may be a dict or list that holds dimensions (a nested space).

    Returns
    -------
    dict[str, Dimension]
        The same keys, in the same order.

    Raises
    ------
    SearchSpaceError
        If ``space`` is not a non-empty mapping with str keys.

    Examples
    --------
    >>> validate_space({"lr": hp_choice([0.1]), "epochs_per_eval": 2})["epochs_per_eval"]
    hp_choice([2])
    """
    if not isinstance(space, Mapping) or not space:
        raise SearchSpaceError(
            f"search_space must be a non-empty dict of name -> dimension. Received: {space!r}"
        )
    dims: dict[str, Dimension] = {}
    for key, value in space.items():
        if not isinstance(key, str) or not key:
            raise SearchSpaceError(f"search_space keys must be non-empty str. Received key: {key!r}")
        dims[key] = value if isinstance(value, Dimension) else Choice((_plain(value),))
    return dims


def describe_space(space: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Return a JSON-able description of ``space`` (for the run record)."""
    return {key: dim.describe() for key, dim in validate_space(space).items()}


def grid(space: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return the Cartesian product of ``space``: the first key varies slowest, options in order.

    Parameters
    ----------
    space : Mapping[str, Any]
        Name -> ``hp_choice``, ``hp_quniform``, ``hp_qloguniform`` or constant.

    Returns
    -------
    list[dict[str, Any]]
        One configuration per grid point, keys in the order of ``space``.

    Raises
    ------
    SearchSpaceError
        If a dimension is continuous (grid search needs hp_choice or a q-dimension).

    Examples
    --------
    >>> grid({"a": hp_choice([1, 2]), "b": hp_choice(["x", "y"])})[:2]
    [{'a': 1, 'b': 'x'}, {'a': 1, 'b': 'y'}]
    """
    dims = validate_space(space)
    axes = []
    for key, dim in dims.items():
        try:
            axes.append(dim.grid_values())
        except SearchSpaceError as err:
            raise SearchSpaceError(f"search_space[{key!r}]: {err}") from None
    return [dict(zip(dims, values, strict=True)) for values in itertools.product(*axes)]


def sample(space: Mapping[str, Any], num: int, seed: int | None) -> list[dict[str, Any]]:
    """Draw ``num`` configurations; each dimension has its own stream seeded by (seed, its name).

    So dimensions are independent, and adding a dimension leaves the others' values unchanged.

    Parameters
    ----------
    space : Mapping[str, Any]
        Name -> dimension or constant.
    num : int
        Number of configurations (>= 1).
    seed : int or None
        A non-negative int, or None for fresh entropy (not reproducible).

    Returns
    -------
    list[dict[str, Any]]
        ``num`` configurations of plain Python values (float, int, or the choice's objects).

    Raises
    ------
    InvalidParamError
        If ``num`` is not an int >= 1 or ``seed`` is not a non-negative int or None.

    Examples
    --------
    >>> space = {"lr": hp_loguniform(1e-4, 1e-1), "batch_size": hp_choice([32, 64])}
    >>> sample(space, 3, seed=0) == sample(space, 3, seed=0)
    True
    """
    if isinstance(num, bool) or not isinstance(num, int) or num < 1:
        raise InvalidParamError(f"num must be an int >= 1. Received: num={num!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise InvalidParamError(f"seed must be a non-negative int or None. Received: seed={seed!r}")
    dims = validate_space(space)
    base = random.SystemRandom().randrange(2**63) if seed is None else seed
    columns: dict[str, list[Any]] = {}
    for key, dim in dims.items():
        if is_nested(dim):  # one draw per configuration, each dimension from its path's stream
            columns[key] = [_draw(dim, key, _Streams(base, i)) for i in range(num)]
        else:
            rng = np.random.default_rng(np.random.SeedSequence([base, stable_hash(key)]))
            columns[key] = dim.sample(rng, num)
    return [{key: columns[key][i] for key in dims} for i in range(num)]
