"""The one place that makes values JSON: run records, search spaces and saves agree."""

from __future__ import annotations

import json
import math

from cerebro_spark._json import is_json, jsonable, read_back
from cerebro_spark.search import hp_choice
from cerebro_spark.search.space import validate_space


def test_jsonable_keeps_json_and_names_the_rest():
    value = {"lr": 1e-3, "layers": (32, 16), 3: math.nan, "inf": -math.inf, "f": len, "none": None}
    out = jsonable(value)
    assert out == {"lr": 1e-3, "layers": [32, 16], "3": "nan", "inf": "-inf", "f": repr(len), "none": None}
    assert is_json(out) and json.loads(json.dumps(out)) == out


def test_jsonable_hands_unknown_values_to_other():
    assert jsonable([1, object], other=lambda v: "other") == [1, "other"]


def test_is_json_refuses_tuples_objects_and_non_string_keys():
    assert is_json({"a": [1, 2.5, None, True, "x"]})
    assert not is_json((1, 2)) and not is_json({1: "a"}) and not is_json([object()])


def test_read_back_is_what_a_json_file_gives():
    assert read_back({"a": (1, 2), "b": {"c": len}}) == {"a": [1, 2], "b": {"c": repr(len)}}


def test_a_space_describes_nested_dimensions_and_non_finite_options():
    space = validate_space({"act": hp_choice(["relu", hp_choice([1, 2])]), "w": hp_choice([math.inf, 0.5])})
    described = {name: dim.describe() for name, dim in space.items()}
    assert described["act"]["options"][1] == {"type": "choice", "options": [1, 2]}
    assert described["w"]["options"] == ["inf", 0.5]
    assert is_json(described)
