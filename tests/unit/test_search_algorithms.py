"""Grid and random search algorithms, and the epoch template they share."""

from __future__ import annotations

import json

import pytest

from cerebro_spark.errors import InvalidParamError, SearchSpaceError
from cerebro_spark.search import (
    Decision,
    GridSearchAlgorithm,
    RandomSearchAlgorithm,
    SearchAlgorithm,
    SingleTrialAlgorithm,
    Trial,
    hp_choice,
    hp_loguniform,
    hp_quniform,
    hp_uniform,
    make_model_id,
)

SPACE = {"lr": hp_choice([0.1, 0.01]), "batch_size": hp_quniform(32, 64, 32), "units": 8}


def test_model_ids():
    assert [make_model_id(i) for i in (0, 7, 123, 12345)] == ["m0000", "m0007", "m0123", "m12345"]


def test_grid_search_trials_in_grid_order():
    algo = GridSearchAlgorithm(SPACE, num_epochs=3)
    trials = algo.initial_trials()
    assert trials == [
        Trial("m0000", {"lr": 0.1, "batch_size": 32, "units": 8}),
        Trial("m0001", {"lr": 0.1, "batch_size": 64, "units": 8}),
        Trial("m0002", {"lr": 0.01, "batch_size": 32, "units": 8}),
        Trial("m0003", {"lr": 0.01, "batch_size": 64, "units": 8}),
    ]
    assert algo.initial_trials() == trials
    trials[0].params["lr"] = 99  # callers cannot corrupt the algorithm
    assert algo.initial_trials()[0].params["lr"] == 0.1


def test_grid_search_refuses_continuous_dimensions():
    with pytest.raises(
        SearchSpaceError, match=r"search_space\['lr'\]: hp_uniform\(low=0, high=1\) is continuous"
    ):
        GridSearchAlgorithm({"lr": hp_uniform(0, 1)}, num_epochs=1)


@pytest.mark.parametrize("bad", [0, -2, 1.5, None, True])
def test_num_epochs_must_be_positive(bad):
    with pytest.raises(
        InvalidParamError, match=rf"num_epochs must be an int >= 1\. Received: num_epochs={bad!r}"
    ):
        GridSearchAlgorithm(SPACE, num_epochs=bad)
    with pytest.raises(
        InvalidParamError, match=rf"num_epochs must be an int >= 1\. Received: num_epochs={bad!r}"
    ):
        RandomSearchAlgorithm(SPACE, num_models=2, num_epochs=bad, seed=0)


@pytest.mark.parametrize("bad", [0, -1, 2.0, "3"])
def test_num_models_must_be_positive(bad):
    with pytest.raises(
        InvalidParamError, match=rf"num_models must be an int >= 1\. Received: num_models={bad!r}"
    ):
        RandomSearchAlgorithm(SPACE, num_models=bad, num_epochs=1, seed=0)


def test_random_search_seed_errors():
    with pytest.raises(
        InvalidParamError, match=r"seed must be a non-negative int or None\. Received: seed=-3"
    ):
        RandomSearchAlgorithm(SPACE, num_models=2, num_epochs=1, seed=-3)


def test_random_search_is_reproducible_by_seed():
    space = {"lr": hp_loguniform(1e-4, 1e-1), "batch_size": hp_choice([16, 32, 64])}
    a = RandomSearchAlgorithm(space, num_models=6, num_epochs=2, seed=11).initial_trials()
    b = RandomSearchAlgorithm(space, num_models=6, num_epochs=2, seed=11).initial_trials()
    c = RandomSearchAlgorithm(space, num_models=6, num_epochs=2, seed=12).initial_trials()
    assert a == b and a != c
    assert [t.model_id for t in a] == [f"m{i:04d}" for i in range(6)]
    assert all(1e-4 <= t.params["lr"] <= 1e-1 and t.params["batch_size"] in (16, 32, 64) for t in a)


def test_random_search_without_seed_records_the_one_it_drew():
    algo = RandomSearchAlgorithm({"lr": hp_uniform(0, 1)}, num_models=3, num_epochs=1)
    again = RandomSearchAlgorithm(
        {"lr": hp_uniform(0, 1)}, num_models=3, num_epochs=1, seed=algo.state()["seed"]
    )
    assert algo.initial_trials() == again.initial_trials()


@pytest.mark.parametrize("algo_cls", ["grid", "random"])
def test_default_epoch_template_stops_after_num_epochs(algo_cls):
    algo: SearchAlgorithm
    if algo_cls == "grid":
        algo = GridSearchAlgorithm(SPACE, num_epochs=3)
    else:
        algo = RandomSearchAlgorithm(SPACE, num_models=2, num_epochs=3, seed=0)
    metrics = {"val_loss": 0.5}
    assert algo.on_epoch_end("m0000", 1, metrics) == Decision(stop=False)
    assert algo.on_epoch_end("m0000", 2, metrics) == Decision(stop=False)
    assert algo.on_epoch_end("m0000", 3, metrics) == Decision(stop=True, reason="completed 3 epochs")
    assert algo.on_epoch_end("m0000", 3, metrics).new_trials == ()


def test_state_is_json_and_describes_the_search():
    grid_state = GridSearchAlgorithm(SPACE, num_epochs=5).state()
    assert grid_state["name"] == "grid" and grid_state["num_epochs"] == 5 and grid_state["num_models"] == 4
    assert grid_state["space"]["lr"] == {"type": "choice", "options": [0.1, 0.01]}
    random_state = RandomSearchAlgorithm(SPACE, num_models=7, num_epochs=2, seed=3).state()
    assert {k: random_state[k] for k in ("name", "num_models", "num_epochs", "seed")} == {
        "name": "random",
        "num_models": 7,
        "num_epochs": 2,
        "seed": 3,
    }
    json.dumps(grid_state)
    json.dumps(random_state)


def test_a_custom_algorithm_fits_the_template():
    class StopBadModels(SearchAlgorithm):
        def __init__(self) -> None:
            self.num_epochs = 4

        def initial_trials(self) -> list[Trial]:
            return [Trial(make_model_id(0), {"lr": 0.1})]

        def on_epoch_end(self, model_id, epoch, metrics):
            if metrics["val_loss"] > 1.0:
                return Decision(stop=True, reason="val_loss > 1", new_trials=(Trial("m0001", {"lr": 0.01}),))
            return super().on_epoch_end(model_id, epoch, metrics)

    algo = StopBadModels()
    assert algo.on_epoch_end("m0000", 1, {"val_loss": 2.0}).new_trials == (Trial("m0001", {"lr": 0.01}),)
    assert algo.on_epoch_end("m0000", 4, {"val_loss": 0.5}) == Decision(True, "completed 4 epochs")
    assert algo.state() == {"name": "StopBadModels", "num_epochs": 4}
    with pytest.raises(TypeError):
        SearchAlgorithm()  # type: ignore[abstract]


def test_single_trial_algorithm():
    algo = SingleTrialAlgorithm(2)
    assert algo.initial_trials() == [Trial("m0000", {})]
    assert algo.on_epoch_end("m0000", 2, {}) == Decision(True, "completed 2 epochs")
    assert algo.state() == {"name": "single", "num_epochs": 2}
    with pytest.raises(InvalidParamError, match=r"num_epochs must be an int >= 1\. Received: num_epochs=0"):
        SingleTrialAlgorithm(0)


def test_fixed_trials_train_each_for_its_own_epochs():
    from cerebro_spark.search import FixedTrialsAlgorithm

    algo = FixedTrialsAlgorithm([{"a": 1}, {"a": 2}], [1, 3])
    assert [t.params for t in algo.initial_trials()] == [{"a": 1}, {"a": 2}]
    assert algo.num_epochs == 3 and algo.max_epochs("m0000") == 1
    assert algo.on_epoch_end("m0000", 1, {}).stop
    assert not algo.on_epoch_end("m0001", 2, {}).stop and algo.on_epoch_end("m0001", 3, {}).stop
    with pytest.raises(
        InvalidParamError, match=r"one epoch count per configuration .*Received: 2 configurations and 1"
    ):
        FixedTrialsAlgorithm([{}, {}], [1])
