"""Integer ranges and conditional / nested search spaces: grids, seeded sampling, TPE."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cerebro_spark.errors import SearchSpaceError
from cerebro_spark.search import (
    GridSearchAlgorithm,
    RandomSearchAlgorithm,
    TPEAlgorithm,
    describe_space,
    grid,
    hp_choice,
    hp_loguniform,
    hp_randint,
    hp_repeat,
    hp_uniform,
    is_nested,
    sample,
)

ARCH = hp_choice(
    [
        {"kind": "mlp", "layers": hp_randint(1, 2)},
        {"kind": "cnn", "filters": hp_choice([8, 16])},
    ]
)


def test_randint_includes_both_bounds_and_grids_every_int() -> None:
    dim = hp_randint(2, 4)
    assert dim.grid_values() == [2, 3, 4]
    draws = dim.sample(np.random.default_rng(0), 300)
    assert set(draws) == {2, 3, 4}
    assert all(type(x) is int for x in draws)


@pytest.mark.parametrize(("low", "high"), [(1.5, 3), (3, 1), (True, 2), ("1", 2)])
def test_randint_refuses_bad_bounds(low: object, high: object) -> None:
    with pytest.raises(SearchSpaceError, match="hp_randint"):
        hp_randint(low, high)  # type: ignore[arg-type]


def test_nested_choice_grid_expands_only_each_branch_own_dimensions() -> None:
    assert grid({"arch": ARCH, "lr": hp_choice([0.1, 0.01])}) == [
        {"arch": {"kind": "mlp", "layers": 1}, "lr": 0.1},
        {"arch": {"kind": "mlp", "layers": 1}, "lr": 0.01},
        {"arch": {"kind": "mlp", "layers": 2}, "lr": 0.1},
        {"arch": {"kind": "mlp", "layers": 2}, "lr": 0.01},
        {"arch": {"kind": "cnn", "filters": 8}, "lr": 0.1},
        {"arch": {"kind": "cnn", "filters": 8}, "lr": 0.01},
        {"arch": {"kind": "cnn", "filters": 16}, "lr": 0.1},
        {"arch": {"kind": "cnn", "filters": 16}, "lr": 0.01},
    ]


def test_repeat_gives_a_width_per_layer() -> None:
    widths = hp_repeat(hp_randint(1, 3), hp_choice([16, 64]))
    assert len(widths.grid_values()) == 2 + 4 + 8
    configs = sample({"widths": widths}, 200, seed=3)
    lengths = {len(c["widths"]) for c in configs}
    assert lengths == {1, 2, 3}
    assert {w for c in configs for w in c["widths"]} == {16, 64}
    # the items are drawn independently: some lists mix both widths
    assert any(len(set(c["widths"])) == 2 for c in configs)


def test_repeat_refuses_a_length_that_is_not_a_count() -> None:
    with pytest.raises(SearchSpaceError, match="length"):
        hp_repeat(hp_choice([1, 2.5]), 8)
    with pytest.raises(SearchSpaceError, match="length"):
        hp_repeat(-1, 8)


def test_nested_sampling_draws_only_the_chosen_branch_and_is_seeded() -> None:
    space = {"arch": ARCH, "lr": hp_loguniform(1e-4, 1e-1)}
    configs = sample(space, 50, seed=7)
    assert configs == sample(space, 50, seed=7)
    assert configs != sample(space, 50, seed=8)
    for config in configs:
        arch = config["arch"]
        assert set(arch) == ({"kind", "layers"} if arch["kind"] == "mlp" else {"kind", "filters"})
    assert {c["arch"]["kind"] for c in configs} == {"mlp", "cnn"}


def test_each_path_has_its_own_stream() -> None:
    """Changing one branch leaves the other branch's values and the other keys' values unchanged."""
    base = sample({"arch": ARCH, "lr": hp_uniform(0, 1)}, 40, seed=1)
    other = hp_choice(
        [{"kind": "mlp", "layers": hp_randint(1, 2)}, {"kind": "cnn", "filters": hp_choice([4, 8, 32, 64])}]
    )
    changed = sample({"arch": other, "lr": hp_uniform(0, 1), "extra": hp_randint(0, 9)}, 40, seed=1)
    assert [c["lr"] for c in base] == [c["lr"] for c in changed]
    for before, after in zip(base, changed, strict=True):
        assert before["arch"]["kind"] == after["arch"]["kind"]
        if before["arch"]["kind"] == "mlp":
            assert before["arch"] == after["arch"]


def test_a_constant_dict_may_hold_dimensions() -> None:
    space = {"optimizer": {"name": "adam", "lr": hp_loguniform(1e-3, 1e-1)}}
    assert is_nested(hp_choice([space["optimizer"]]))
    for config in sample(space, 5, seed=0):
        assert config["optimizer"]["name"] == "adam"
        assert 1e-3 <= config["optimizer"]["lr"] <= 1e-1
    with pytest.raises(SearchSpaceError, match="continuous"):
        grid(space)


def test_nested_choice_sample_method_resolves_branches() -> None:
    values = ARCH.sample(np.random.default_rng(0), 20)
    assert all(isinstance(v["layers" if v["kind"] == "mlp" else "filters"], int) for v in values)


def test_nested_space_description_is_json() -> None:
    text = json.dumps(describe_space({"arch": ARCH, "widths": hp_repeat(hp_randint(1, 2), 32)}))
    assert '"randint"' in text and '"repeat"' in text


def test_grid_and_random_search_take_nested_spaces() -> None:
    trials = GridSearchAlgorithm({"arch": ARCH}, num_epochs=1).initial_trials()
    assert len(trials) == 4
    random_trials = RandomSearchAlgorithm({"arch": ARCH}, num_models=6, num_epochs=1, seed=0).initial_trials()
    assert len(random_trials) == 6


def test_tpe_suggests_define_by_run_on_a_nested_space() -> None:
    space = {"arch": ARCH, "widths": hp_repeat(hp_randint(1, 3), hp_choice([16, 32])), "lr": 0.01}
    algo = TPEAlgorithm(space, num_models=12, num_epochs=1, seed=0, metric="val_loss", mode="min",
                        max_concurrent=2)  # fmt: skip
    pending = list(algo.initial_trials())
    seen = []
    while pending:
        trial = pending.pop(0)
        seen.append(trial)
        arch = trial.params["arch"]
        assert set(arch) == ({"kind", "layers"} if arch["kind"] == "mlp" else {"kind", "filters"})
        assert 1 <= len(trial.params["widths"]) <= 3 and trial.params["lr"] == 0.01
        # a scripted metric: cnn with 16 filters is best
        loss = 0.1 if arch.get("filters") == 16 else 1.0 + len(trial.params["widths"])
        pending.extend(algo.on_epoch_end(trial.model_id, 1, {"val_loss": loss}).new_trials)
    assert len(seen) == 12
    again = TPEAlgorithm(space, num_models=12, num_epochs=1, seed=0, metric="val_loss", mode="min",
                         max_concurrent=2)  # fmt: skip
    assert [t.params for t in again.initial_trials()] == [t.params for t in seen[:2]]
