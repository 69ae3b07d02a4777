"""Search-space dimensions, validation, grids and seeded sampling."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest

from cerebro_spark.errors import InvalidParamError, SearchSpaceError
from cerebro_spark.search import (
    MAX_GRID_VALUES,
    Choice,
    Dimension,
    LogUniform,
    QLogUniform,
    QUniform,
    Uniform,
    describe_space,
    grid,
    hp_choice,
    hp_loguniform,
    hp_qloguniform,
    hp_quniform,
    hp_uniform,
    sample,
    stable_hash,
    validate_space,
)

SEEDS = range(10)


# -- constructors and their errors ----------------------------------------------------------------


def test_constructors_return_frozen_dimensions():
    dims = [
        hp_choice([1, 2]),
        hp_uniform(0, 1),
        hp_quniform(0, 10, 2),
        hp_loguniform(1e-4, 1e-1),
        hp_qloguniform(8, 64, 8),
    ]
    assert [type(d) for d in dims] == [Choice, Uniform, QUniform, LogUniform, QLogUniform]
    assert all(isinstance(d, Dimension) for d in dims)
    with pytest.raises(AttributeError):
        dims[1].low = 5  # type: ignore[misc]


def test_reprs_read_like_the_constructors():
    assert repr(hp_choice([1, "a"])) == "hp_choice([1, 'a'])"
    assert repr(hp_uniform(0, 1)) == "hp_uniform(low=0, high=1)"
    assert repr(hp_qloguniform(8, 64, 8)) == "hp_qloguniform(low=8, high=64, q=8)"


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: hp_choice([]), r"hp_choice needs at least one option\. Received: options=\[\]"),
        (lambda: hp_choice(()), r"hp_choice needs at least one option\. Received: options=\(\)"),
        (lambda: hp_choice("abc"), r"hp_choice needs a list or tuple of options\. Received: options='abc'"),
        (lambda: hp_choice(5), r"hp_choice needs a list or tuple of options\. Received: options=5"),
        (lambda: hp_uniform(1, 1), r"hp_uniform: low must be < high\. Received: low=1, high=1"),
        (lambda: hp_uniform(2, 1), r"hp_uniform: low must be < high\. Received: low=2, high=1"),
        (lambda: hp_uniform("0", 1), r"hp_uniform: low must be a finite number\. Received: low='0', high=1"),
        (
            lambda: hp_uniform(0, None),
            r"hp_uniform: high must be a finite number\. Received: low=0, high=None",
        ),
        (lambda: hp_uniform(True, 2), r"hp_uniform: low must be a finite number\. Received: low=True"),
        (
            lambda: hp_uniform(0, math.inf),
            r"hp_uniform: high must be a finite number\. Received: low=0, high=inf",
        ),
        (lambda: hp_quniform(0, 10, 0), r"hp_quniform: q must be > 0\. Received: low=0, high=10, q=0"),
        (lambda: hp_quniform(0, 10, -1), r"hp_quniform: q must be > 0\. Received: low=0, high=10, q=-1"),
        (lambda: hp_quniform(0, 10, "1"), r"hp_quniform: q must be a finite number\. Received: .*q='1'"),
        (lambda: hp_quniform(5, 1, 1), r"hp_quniform: low must be < high\. Received: low=5, high=1, q=1"),
        (
            lambda: hp_quniform(1, 2, 5),
            r"hp_quniform: no multiple of q lies in \[low, high\]\. Received: low=1",
        ),
        (
            lambda: hp_loguniform(0.1, 0.01),
            r"hp_loguniform: low must be < high\. Received: low=0.1, high=0.01",
        ),
        (
            lambda: hp_qloguniform(64, 8, 8),
            r"hp_qloguniform: low must be < high\. Received: low=64, high=8, q=8",
        ),
        (lambda: hp_qloguniform(8, 64, 0), r"hp_qloguniform: q must be > 0\. Received: low=8, high=64, q=0"),
    ],
)
def test_constructor_errors_name_the_primitive_and_the_values(make, match):
    with pytest.raises(SearchSpaceError, match=match):
        make()


@pytest.mark.parametrize(("low", "high"), [(-4, -1), (0, 1), (-1e-3, 1e-1)])
def test_loguniform_bounds_are_values_not_exponents(low, high):
    with pytest.raises(
        SearchSpaceError,
        match=r"hp_loguniform: bounds are values, not exponents .* e\.g\. hp_loguniform\(1e-4, 1e-1\) samples "
        rf"between 0\.0001 and 0\.1\. Received: low={low}, high={high}",
    ):
        hp_loguniform(low, high)
    with pytest.raises(
        SearchSpaceError, match=r"hp_qloguniform: bounds are values, not exponents .* e\.g\. "
    ):
        hp_qloguniform(low, high, 1)


def test_direct_construction_is_validated_too():
    with pytest.raises(SearchSpaceError, match=r"hp_uniform: low must be < high"):
        Uniform(1.0, 0.0)
    with pytest.raises(SearchSpaceError, match=r"hp_choice needs at least one option"):
        Choice(())


def test_numpy_numbers_become_plain_python():
    dim = hp_quniform(np.int64(0), np.int64(10), np.int64(5))
    assert dim.grid_values() == [0, 5, 10] and all(type(v) is int for v in dim.grid_values())
    assert (
        hp_choice([np.float64(0.5)]).options == (0.5,)
        and type(hp_choice([np.float64(0.5)]).options[0]) is float
    )


# -- sampling each dimension ----------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_uniform_in_range_and_plain_floats(seed):
    values = hp_uniform(-2, 3).sample(np.random.default_rng(seed), 500)
    assert all(type(v) is float and -2 <= v < 3 for v in values)
    assert abs(np.mean(values) - 0.5) < 0.3


@pytest.mark.parametrize("seed", SEEDS)
def test_loguniform_in_range_and_uniform_in_log(seed):
    values = hp_loguniform(1e-4, 1e-1).sample(np.random.default_rng(seed), 2000)
    assert all(type(v) is float and 1e-4 <= v <= 1e-1 for v in values)
    logs = np.log10(values)
    counts, _ = np.histogram(logs, bins=3, range=(-4, -1))  # one decade per bin
    assert all(abs(c / 2000 - 1 / 3) < 0.05 for c in counts)


@pytest.mark.parametrize("seed", SEEDS)
def test_choice_samples_only_its_options_all_of_them(seed):
    options = ["a", ("b", 1), None]
    values = hp_choice(options).sample(np.random.default_rng(seed), 300)
    assert set(map(repr, values)) == set(map(repr, options))


@pytest.mark.parametrize("seed", SEEDS)
def test_quniform_rounds_to_multiples_of_q_inside_bounds(seed):
    ints = hp_quniform(1, 10, 4).sample(np.random.default_rng(seed), 500)
    assert set(ints) == {4, 8} and all(type(v) is int for v in ints)
    floats = hp_quniform(0.0, 1.0, 0.1).sample(np.random.default_rng(seed), 500)
    assert all(type(v) is float and 0.0 <= v <= 1.0 for v in floats)
    assert set(floats) <= {round(0.1 * k, 1) for k in range(11)}  # 0.3, not 0.30000000000000004
    mixed = hp_quniform(0, 10, 2.5).sample(np.random.default_rng(seed), 100)
    assert set(mixed) <= {0.0, 2.5, 5.0, 7.5, 10.0} and all(type(v) is float for v in mixed)


@pytest.mark.parametrize("seed", SEEDS)
def test_qloguniform_rounds_and_is_int_when_all_ints(seed):
    values = hp_qloguniform(8, 512, 8).sample(np.random.default_rng(seed), 500)
    assert all(type(v) is int and v % 8 == 0 and 8 <= v <= 512 for v in values)
    assert np.median(values) < 200  # log-uniform: most mass at the small end


def test_q_rounding_is_round_x_over_q_times_q_kept_inside_bounds():
    dim = hp_quniform(0.5, 2.7, 1)  # multiples of 1 inside: 1, 2
    assert dim.grid_values() == [1.0, 2.0]
    assert dim._quantize(np.array([0.5, 0.6, 1.49, 1.51, 2.6, 2.7])) == [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]


# -- grid values ----------------------------------------------------------------------------------


def test_grid_values_of_discrete_dimensions():
    assert hp_choice([3, 1, 2]).grid_values() == [3, 1, 2]
    assert hp_quniform(16, 64, 16).grid_values() == [16, 32, 48, 64]
    assert hp_quniform(0.0, 0.3, 0.1).grid_values() == [0.0, 0.1, 0.2, 0.3]
    assert hp_qloguniform(1, 4, 1).grid_values() == [1, 2, 3, 4]


@pytest.mark.parametrize("dim", [hp_uniform(0, 1), hp_loguniform(1e-3, 1)])
def test_continuous_dimensions_refuse_grids(dim):
    with pytest.raises(SearchSpaceError, match=r"is continuous: GridSearch needs hp_choice or a q-dimension"):
        dim.grid_values()
    with pytest.raises(SearchSpaceError, match=r"search_space\['lr'\]: hp_\w+\(low=.*\) is continuous"):
        grid({"bs": hp_choice([1]), "lr": dim})


def test_huge_q_grid_is_refused():
    with pytest.raises(SearchSpaceError, match=rf"has 1000001 grid values, more than {MAX_GRID_VALUES}"):
        hp_quniform(0, 1_000_000, 1).grid_values()


# -- spaces ---------------------------------------------------------------------------------------


def test_validate_space_turns_constants_into_one_value_choices():
    dims = validate_space({"lr": hp_uniform(0, 1), "layers": [64, 32], "name": "x"})
    assert dims["lr"] == hp_uniform(0, 1)
    assert dims["layers"] == Choice(([64, 32],)) and dims["name"] == Choice(("x",))


@pytest.mark.parametrize(
    ("space", "match"),
    [
        ({}, r"search_space must be a non-empty dict of name -> dimension\. Received: \{\}"),
        ([("a", 1)], r"search_space must be a non-empty dict .* Received: \[\('a', 1\)\]"),
        (None, r"search_space must be a non-empty dict .* Received: None"),
        ({1: hp_choice([1])}, r"search_space keys must be non-empty str\. Received key: 1"),
        ({"": 1}, r"search_space keys must be non-empty str\. Received key: ''"),
    ],
)
def test_validate_space_errors(space, match):
    with pytest.raises(SearchSpaceError, match=match):
        validate_space(space)


def test_grid_order_first_key_slowest_and_size():
    space = {"a": hp_choice([1, 2]), "b": hp_choice(["x", "y", "z"]), "c": 0.5, "d": hp_quniform(0, 2, 1)}
    configs = grid(space)
    assert len(configs) == 2 * 3 * 1 * 3
    assert configs[:4] == [
        {"a": 1, "b": "x", "c": 0.5, "d": 0},
        {"a": 1, "b": "x", "c": 0.5, "d": 1},
        {"a": 1, "b": "x", "c": 0.5, "d": 2},
        {"a": 1, "b": "y", "c": 0.5, "d": 0},
    ]
    assert configs[-1] == {"a": 2, "b": "z", "c": 0.5, "d": 2}
    assert [list(c) for c in configs] == [["a", "b", "c", "d"]] * 18
    assert grid(space) == configs


def test_sample_reproducible_with_same_seed_different_with_another():
    space = {"lr": hp_loguniform(1e-4, 1e-1), "bs": hp_choice([16, 32, 64]), "drop": hp_uniform(0, 0.5)}
    assert sample(space, 20, seed=3) == sample(space, 20, seed=3)
    assert sample(space, 20, seed=3) != sample(space, 20, seed=4)
    assert sample(space, 5, seed=None) != sample(space, 5, seed=None)


def test_sample_returns_plain_python_values():
    space = {"lr": hp_loguniform(1e-4, 1e-1), "bs": hp_choice([16, 32]), "u": hp_quniform(1, 9, 2), "c": "k"}
    for config in sample(space, 10, seed=0):
        assert [type(v) for v in config.values()] == [float, int, int, str]
        json.dumps(config)


@pytest.mark.parametrize("seed", SEEDS)
def test_dimensions_are_independent_streams(seed):
    configs = sample({"x": hp_uniform(0, 1), "y": hp_uniform(0, 1)}, 2000, seed=seed)
    x, y = (np.array([c[k] for c in configs]) for k in "xy")
    assert abs(np.corrcoef(x, y)[0, 1]) < 0.1
    assert not np.array_equal(x, y)


def test_adding_a_dimension_does_not_change_the_others():
    small = sample({"lr": hp_loguniform(1e-4, 1e-1), "bs": hp_choice([1, 2, 3])}, 10, seed=5)
    big = sample(
        {"extra": hp_uniform(0, 1), "lr": hp_loguniform(1e-4, 1e-1), "bs": hp_choice([1, 2, 3])}, 10, seed=5
    )
    assert [{k: c[k] for k in ("lr", "bs")} for c in big] == small


def test_stable_hash_is_a_fixed_64_bit_value():
    assert (
        stable_hash("lr") == int.from_bytes(hashlib.sha256(b"lr").digest()[:8], "big") == 0x6896B0801B055ABE
    )
    assert stable_hash("lr") == stable_hash("lr") != stable_hash("lr2")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num": 0, "seed": 1}, r"num must be an int >= 1\. Received: num=0"),
        ({"num": 2.0, "seed": 1}, r"num must be an int >= 1\. Received: num=2\.0"),
        ({"num": 2, "seed": -1}, r"seed must be a non-negative int or None\. Received: seed=-1"),
        ({"num": 2, "seed": "1"}, r"seed must be a non-negative int or None\. Received: seed='1'"),
    ],
)
def test_sample_argument_errors(kwargs, match):
    with pytest.raises(InvalidParamError, match=match):
        sample({"a": hp_uniform(0, 1)}, **kwargs)


def test_describe_space_is_json():
    space = {"lr": hp_loguniform(1e-4, 1e-1), "bs": hp_quniform(16, 64, 16), "act": hp_choice(["relu", len])}
    described = describe_space(space)
    assert described["lr"] == {"type": "loguniform", "low": 1e-4, "high": 1e-1}
    assert described["bs"] == {"type": "quniform", "low": 16, "high": 64, "q": 16}
    assert described["act"]["options"][0] == "relu" and "len" in described["act"]["options"][1]
    json.dumps(described)


def test_loguniform_warns_where_bounds_look_like_upstream_exponents():
    with pytest.warns(
        UserWarning,
        match=r"hp_loguniform\(1, 3\) draws values from 1 to 3.*exponents.*hp_loguniform\(10, 1000\)",
    ):
        hp_loguniform(1, 3)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hp_loguniform(1.0, 3.0)  # floats: values meant
        hp_loguniform(16, 512)  # beyond 10: not exponents
        hp_loguniform(1e-4, 1e-1)
