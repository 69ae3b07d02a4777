"""Successive halving, Hyperband, ASHA and TPE on scripted metric sequences (no driver, no Spark)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cerebro_spark.errors import InvalidParamError, MissingDependencyError
from cerebro_spark.search import (
    ASHAAlgorithm,
    Decision,
    HyperbandAlgorithm,
    SuccessiveHalvingAlgorithm,
    TPEAlgorithm,
    hp_choice,
    hp_loguniform,
    hp_qloguniform,
    hp_quniform,
    hp_uniform,
)
from cerebro_spark.search._rungs import ranked, rung_epochs

SPACE = {"lr": hp_loguniform(1e-4, 1e-1), "units": hp_choice([8, 16, 32])}


def sha(num_models=9, min_epochs=1, max_epochs=9, eta=3, mode="min", seed=0):
    return SuccessiveHalvingAlgorithm(
        SPACE, num_models=num_models, min_epochs=min_epochs, max_epochs=max_epochs,
        reduction_factor=eta, seed=seed, metric="val_loss", mode=mode,
    )  # fmt: skip


def loss(value):
    return {"val_loss": value, "loss": value}


# ---- shared pieces ---------------------------------------------------------------------------------


def test_rung_epochs_and_ranking():
    assert rung_epochs(1, 27, 3) == [1, 3, 9]
    assert rung_epochs(2, 20, 2) == [2, 4, 8, 16]
    assert rung_epochs(5, 5, 3) == []
    nan = float("nan")
    assert ranked({"b": 1.0, "a": 1.0, "c": nan, "d": 3.0}, "max") == ["d", "a", "b", "c"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_models": 0}, r"num_models must be an int >= 1. Received: num_models=0"),
        ({"min_epochs": 4, "max_epochs": 3}, r"min_epochs must be <= max_epochs. Received: min_epochs=4"),
        ({"eta": 1}, r"reduction_factor must be an int >= 2. Received: reduction_factor=1"),
        ({"seed": -1}, r"seed must be a non-negative int. Received: seed=-1"),
        ({"mode": "up"}, r"mode must be 'auto', 'min' or 'max'. Received: mode='up'"),
    ],
)
def test_invalid_arguments_name_the_parameter(kwargs, match):
    with pytest.raises(InvalidParamError, match=match):
        sha(**kwargs)


def test_missing_metric_names_the_available_ones():
    algo = sha()
    with pytest.raises(
        InvalidParamError, match=r"'val_loss' is not among the metrics of model 'm0000': \['loss'\]"
    ):
        algo.on_epoch_end("m0000", 1, {"loss": 0.1})


# ---- successive halving ------------------------------------------------------------------------------


def test_sha_pauses_until_the_rung_is_complete_then_keeps_the_top_third():
    algo = sha()
    assert algo.rungs == [1, 3]
    ids = [t.model_id for t in algo.initial_trials()]
    assert len(ids) == 9
    values = dict(zip(ids, [0.9, 0.1, 0.8, 0.2, 0.7, 0.3, 0.6, 0.4, 0.5], strict=True))
    for model_id in ids[:-1]:
        assert algo.on_epoch_end(model_id, 1, loss(values[model_id])) == Decision(pause=True)
    last = algo.on_epoch_end(ids[-1], 1, loss(values[ids[-1]]))  # 0.5: not in the top 3
    assert last.stop and last.reason == "stopped at rung 0 (epoch 1): val_loss=0.5, not in the top 3 of 9"
    assert last.resume == ("m0001", "m0003", "m0005")
    assert set(last.stop_paused) == {"m0000", "m0002", "m0004", "m0006", "m0007"}
    assert last.stop_paused_reason == "stopped at rung 0 (epoch 1): not in the top 3 of 9 by val_loss"
    assert (
        last.reason_for_paused("m0007") == "stopped at rung 0 (epoch 1): val_loss=0.4, not in the top 3 of 9"
    )
    assert algo.stop_reasons["m0000"].endswith("val_loss=0.9, not in the top 3 of 9")
    # epochs between rungs continue; rung 1 (epoch 3) keeps 1 of 3
    assert algo.on_epoch_end("m0001", 2, loss(0.1)) == Decision()
    assert algo.on_epoch_end("m0001", 3, loss(0.05)).pause
    assert algo.on_epoch_end("m0003", 3, loss(0.01)).pause
    decision = algo.on_epoch_end("m0005", 3, loss(0.5))
    assert (
        decision.stop
        and decision.reason == "stopped at rung 1 (epoch 3): val_loss=0.5, not in the top 1 of 3"
    )
    assert decision.resume == ("m0003",) and decision.stop_paused == ("m0001",)
    assert algo.on_epoch_end("m0003", 8, loss(0.01)) == Decision()
    assert algo.on_epoch_end("m0003", 9, loss(0.01)) == Decision(stop=True, reason="completed 9 epochs")


def test_sha_the_last_arrival_that_wins_continues_and_max_mode_keeps_the_largest():
    algo = sha(num_models=4, max_epochs=4, eta=2, mode="max")
    assert algo.rungs == [1, 2]
    for model_id, acc in (("m0000", 0.9), ("m0001", 0.1), ("m0002", 0.2)):
        assert algo.on_epoch_end(model_id, 1, {"val_loss": acc}).pause
    decision = algo.on_epoch_end("m0003", 1, {"val_loss": 0.8})
    assert not decision.stop and not decision.pause
    assert decision.resume == ("m0000",) and set(decision.stop_paused) == {"m0001", "m0002"}


def test_sha_ties_are_broken_by_model_id():
    algo = sha(num_models=3, max_epochs=3)
    algo.on_epoch_end("m0002", 1, loss(0.5))
    algo.on_epoch_end("m0001", 1, loss(0.5))
    decision = algo.on_epoch_end("m0000", 1, loss(0.5))
    assert not decision.stop and decision.stop_paused == ("m0001", "m0002")


def test_sha_a_failed_model_leaves_its_rung_and_may_complete_it():
    algo = sha(num_models=3, max_epochs=3)
    assert algo.on_epoch_end("m0000", 1, loss(0.5)).pause
    assert algo.on_epoch_end("m0001", 1, loss(0.1)).pause
    decision = algo.on_model_failed("m0002", "diverged")
    assert decision.resume == ("m0001",) and decision.stop_paused == ("m0000",)
    assert algo.on_model_failed("m0001", "diverged") == Decision()  # no rung left to resolve


def test_sha_is_reproducible_by_seed():
    assert sha(seed=3).initial_trials() == sha(seed=3).initial_trials()
    assert sha(seed=3).initial_trials() != sha(seed=4).initial_trials()


# ---- hyperband ----------------------------------------------------------------------------------------


def test_hyperband_brackets_and_unique_ids():
    algo = HyperbandAlgorithm(SPACE, max_epochs=27, seed=1, metric="val_loss", mode="min")
    assert algo.bracket_sizes == [27, 12, 6, 4]
    assert algo.bracket_rungs == [[1, 3, 9], [3, 9], [9], []]
    ids = [t.model_id for t in algo.initial_trials()]
    assert len(ids) == len(set(ids)) == 49
    assert algo.state()["brackets"][1]["models"] == ids[27:39]


def test_hyperband_rungs_synchronize_within_a_bracket_only():
    algo = HyperbandAlgorithm(SPACE, max_epochs=9, seed=1, metric="val_loss", mode="min")
    assert algo.bracket_sizes == [9, 5, 3]
    # bracket 1 (m0009..m0013) has its first rung at epoch 3; bracket 0's models don't block it
    assert algo.on_epoch_end("m0009", 1, loss(0.5)) == Decision()
    for i, value in zip(range(9, 13), [0.5, 0.4, 0.3, 0.2], strict=True):
        assert algo.on_epoch_end(f"m{i:04d}", 3, loss(value)).pause
    decision = algo.on_epoch_end("m0013", 3, loss(0.1))
    assert not decision.stop and decision.resume == ()
    assert len(decision.stop_paused) == 4
    assert decision.reason_for_paused("m0009") == (
        "stopped at bracket 1, rung 0 (epoch 3): val_loss=0.5, not in the top 1 of 5"
    )
    assert algo.on_epoch_end("m0014", 3, loss(0.1)) == Decision()  # bracket 2: no rung
    assert algo.on_epoch_end("m0014", 9, loss(0.1)).reason == "completed 9 epochs"


# ---- ASHA -----------------------------------------------------------------------------------------------


def asha(num_models=9, max_concurrent=None, **kwargs):
    kwargs = {"max_epochs": 9, "seed": 0, "metric": "val_loss", "mode": "min", **kwargs}
    return ASHAAlgorithm(SPACE, num_models=num_models, max_concurrent=max_concurrent, **kwargs)


def test_asha_promotes_the_top_third_so_far_and_parks_the_others_without_a_worker():
    algo = asha(num_models=5, max_concurrent=3)
    assert algo.rungs == [1, 3] and [t.model_id for t in algo.initial_trials()] == ["m0000", "m0001", "m0002"]
    first = algo.on_epoch_end("m0000", 1, loss(0.1))  # 1 result: top 0 of 1: waits, a new model starts
    assert first.pause and [t.model_id for t in first.new_trials] == ["m0003"]
    second = algo.on_epoch_end("m0001", 1, loss(0.5))
    assert second.pause and [t.model_id for t in second.new_trials] == ["m0004"]
    third = algo.on_epoch_end("m0002", 1, loss(0.3))  # 3 results: m0000 is the top 1: promoted
    assert third == Decision(pause=True, resume=("m0000",))
    assert algo.on_epoch_end("m0003", 1, loss(0.2)) == Decision(pause=True)  # top 1 of 4 is promoted already
    assert algo.on_epoch_end("m0000", 2, loss(0.1)) == Decision()
    assert algo.on_epoch_end("m0004", 1, loss(0.01)) == Decision()  # the best of 5, not promoted yet
    algo.on_epoch_end("m0000", 3, loss(0.1))  # rung 1: 1 result, top 0: waits
    ended = algo.on_model_failed("m0004", "boom")
    # nothing runs, nothing is left and nothing completed: the best of the highest rung goes on,
    # every other waiting model stops with its own reason
    assert ended.resume == ("m0000",) and set(ended.stop_paused) == {"m0001", "m0002", "m0003"}
    assert algo.stop_reasons["m0001"] == "stopped at rung 0 (epoch 1): val_loss=0.5, not in the top 1 of 5"
    assert algo.stop_reasons["m0004"] == "failed"


def test_asha_when_nothing_is_left_the_best_of_the_highest_rung_finishes_and_the_rest_stop():
    algo = asha(num_models=3, max_concurrent=3)
    assert algo.on_epoch_end("m0000", 1, loss(0.5)).pause
    assert algo.on_epoch_end("m0001", 1, loss(0.4)).pause
    last = algo.on_epoch_end("m0002", 1, loss(0.9))  # promotes m0001, then m0002 waits
    assert last == Decision(pause=True, resume=("m0001",))
    # m0001 is alone at rung 1 and nothing else runs: as no model completed, it goes on
    finalist = algo.on_epoch_end("m0001", 3, loss(0.1))
    assert not finalist.stop and not finalist.pause
    assert set(finalist.stop_paused) == {"m0000", "m0002"}
    assert (
        finalist.reason_for_paused("m0002")
        == "stopped at rung 0 (epoch 1): val_loss=0.9, not in the top 1 of 3"
    )
    assert algo.on_epoch_end("m0001", 9, loss(0.1)) == Decision(stop=True, reason="completed 9 epochs")


def test_asha_the_model_whose_pause_ends_the_search_stops_and_the_finalist_resumes():
    algo = asha(num_models=4, max_concurrent=4)
    assert algo.on_epoch_end("m0000", 1, loss(0.1)).pause
    assert algo.on_epoch_end("m0001", 1, loss(0.2)).pause
    assert algo.on_epoch_end("m0002", 1, loss(0.3)) == Decision(pause=True, resume=("m0000",))
    assert algo.on_epoch_end("m0000", 3, loss(0.05)) == Decision(pause=True)  # m0003 still runs
    decision = algo.on_epoch_end("m0003", 1, loss(0.9))
    assert decision.stop and not decision.pause
    assert decision.reason == "stopped at rung 0 (epoch 1): val_loss=0.9, not in the top 1 of 4"
    assert decision.resume == ("m0000",) and set(decision.stop_paused) == {"m0001", "m0002"}
    assert algo.on_epoch_end("m0000", 9, loss(0.01)) == Decision(stop=True, reason="completed 9 epochs")


def test_asha_configurations_come_from_the_seed():
    a, b = asha(seed=5, max_concurrent=1), asha(seed=5, max_concurrent=9)
    trials = list(a.initial_trials())
    for i in range(8):
        trials += a.on_epoch_end(f"m{i:04d}", 9, loss(0.1)).new_trials
    assert trials == b.initial_trials()


# ---- TPE ------------------------------------------------------------------------------------------------


def tpe(num_models=6, max_concurrent=2, mode="min", space=SPACE, seed=0):
    return TPEAlgorithm(space, num_models=num_models, num_epochs=2, seed=seed, metric="val_loss", mode=mode,
                        max_concurrent=max_concurrent)  # fmt: skip


def test_tpe_proposes_exactly_num_models_asynchronously():
    algo = tpe()
    live = [t.model_id for t in algo.initial_trials()]
    assert live == ["m0000", "m0001"]
    proposed = list(live)
    while live:
        model_id = live.pop(0)
        assert algo.on_epoch_end(model_id, 1, loss(0.5)) == Decision()
        decision = algo.on_epoch_end(model_id, 2, loss(0.4 if model_id != "m0001" else float("nan")))
        assert decision.stop and decision.reason == "completed 2 epochs"
        live += [t.model_id for t in decision.new_trials]
        proposed += [t.model_id for t in decision.new_trials]
    assert proposed == [f"m{i:04d}" for i in range(6)] and algo.num_proposed == 6
    assert algo.told["m0000"] == 0.4  # the best epoch's value
    assert algo.told["m0001"] == 0.5  # NaN at the last epoch: the best epoch counts


def test_tpe_tells_failures_and_maps_every_dimension():
    space = {
        "opt": hp_choice([{"name": "adam"}, None]),
        "x": hp_uniform(0.0, 1.0),
        "lr": hp_loguniform(1e-4, 1e-1),
        "width": hp_quniform(8, 64, 8),
        "drop": hp_quniform(0.0, 0.5, 0.1),
        "batch": hp_qloguniform(16, 512, 16),
        "const": 3,
    }
    algo = tpe(space=space, num_models=3, max_concurrent=3)
    for trial in algo.initial_trials():
        p = trial.params
        assert p["opt"] in ({"name": "adam"}, None) and 0 <= p["x"] <= 1 and 1e-4 <= p["lr"] <= 1e-1
        assert p["width"] % 8 == 0 and 8 <= p["width"] <= 64 and isinstance(p["width"], int)
        assert p["drop"] in {0.0, 0.1, 0.2, 0.3, 0.4, 0.5}
        assert p["batch"] % 16 == 0 and 16 <= p["batch"] <= 512 and p["const"] == 3
    assert algo.on_model_failed("m0000", "boom") == Decision()  # budget already proposed
    assert algo.told["m0000"] is None
    assert algo.on_model_failed("m0000", "again") == Decision()


def test_tpe_same_seed_same_proposals():
    def run(seed):
        algo, out = tpe(num_models=12, max_concurrent=1, seed=seed), []
        live = algo.initial_trials()
        while live:
            out.append(live[0].params)
            live = list(algo.on_epoch_end(live[0].model_id, 2, loss(live[0].params["lr"])).new_trials)
        return out

    assert run(1) == run(1) and run(1) != run(2)


def test_tpe_without_optuna_names_the_extra():
    code = (
        "import sys; sys.modules['optuna'] = None\n"
        "from cerebro_spark.search import TPEAlgorithm, hp_uniform\n"
        "try:\n"
        "    TPEAlgorithm({'x': hp_uniform(0, 1)}, num_models=1, num_epochs=1, seed=0, metric='val_loss',"
        " mode='min', max_concurrent=1)\n"
        "except ImportError as err:\n"
        "    print(type(err).__name__, err)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith(MissingDependencyError.__name__)
    assert "pip install 'cerebro_spark[tune]'" in out


# ---- every algorithm, driven by a random simulated driver ----------------------------------------------


def simulate(algo, seed, fail_prob=0.1):
    """A tiny driver: models run in a random order; checks the decisions keep the driver's invariants."""
    import random

    rng = random.Random(seed)
    running = {t.model_id: 0 for t in algo.initial_trials()}
    paused, ended, quality = set(), {}, {}

    def apply(decision):
        for m in (*decision.resume, *decision.stop_paused):
            assert m in paused, (m, paused)
        for m in decision.resume:
            paused.discard(m)
            running[m] = epochs[m]
        for m in decision.stop_paused:
            paused.discard(m)
            ended[m] = "stopped"
        for t in decision.new_trials:
            assert t.model_id not in running and t.model_id not in ended and t.model_id not in paused
            running[t.model_id] = 0

    epochs = {}
    while running:
        model_id = rng.choice(sorted(running))
        quality.setdefault(model_id, rng.random())
        if rng.random() < fail_prob / 10:
            del running[model_id]
            ended[model_id] = "failed"
            apply(algo.on_model_failed(model_id, "boom"))
            continue
        epoch = running.pop(model_id) + 1
        epochs[model_id] = epoch
        decision = algo.on_epoch_end(model_id, epoch, loss(quality[model_id] / epoch))
        assert not (decision.stop and decision.pause)
        if decision.stop:
            ended[model_id] = "completed" if epoch >= algo.max_epochs(model_id) else "stopped"
        elif decision.pause:
            paused.add(model_id)
        else:
            assert epoch < algo.max_epochs(model_id)
            running[model_id] = epoch
        apply(decision)
    assert not paused
    return ended


@pytest.mark.parametrize("seed", range(20))
def test_every_algorithm_ends_every_model_under_any_order(seed):
    sh = sha(num_models=10, max_epochs=9, seed=seed)
    ended = simulate(sh, seed)
    assert len(ended) == 10 and list(ended.values()).count("completed") <= 1
    hb = HyperbandAlgorithm(SPACE, max_epochs=9, seed=seed, metric="val_loss", mode="min")
    assert len(simulate(hb, seed)) == sum(hb.bracket_sizes)
    a = asha(num_models=12, max_concurrent=3, seed=seed)
    ended = simulate(a, seed)
    assert len(ended) == 12 and a.num_proposed == 12
    assert "completed" in ended.values() or "failed" in ended.values()
    t = tpe(num_models=5, max_concurrent=2, seed=seed)
    assert len(simulate(t, seed)) == 5
