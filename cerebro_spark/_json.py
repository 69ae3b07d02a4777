"""Values as JSON holds them: the one place that decides, for run records, search spaces and saves."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any


def jsonable(value: Any, other: Callable[[Any], Any] = repr) -> Any:
    """``value`` as JSON can hold it: strings, ints, bools and None as they are, a float as it is (a
    non-finite one as its name, ``"nan"``), lists and tuples as lists, mappings with their keys as
    strings; anything else through ``other`` (default: its repr)."""
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        return [jsonable(v, other) for v in value]
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, other) for k, v in value.items()}
    return other(value)


def is_json(value: Any) -> bool:
    """Whether ``value`` is plain JSON data (round-trips through ``json`` unchanged)."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return True
    if isinstance(value, list):
        return all(is_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_json(v) for k, v in value.items())
    return False


def read_back(value: Any) -> Any:
    """What reading ``value`` back from a JSON file gives (tuples as lists, unknown objects as reprs)."""
    return json.loads(json.dumps(value, default=repr))
