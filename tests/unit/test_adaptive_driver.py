"""The adaptive algorithms driven by the real MOP driver on LocalBackend with fake tasks.

The fake loss after ``v`` training units is ``1 / (1 + rate * v)``: a larger ``rate`` is better.
"""

from __future__ import annotations

from cerebro_spark.backend.local import LocalBackend
from cerebro_spark.driver import MopDriver, RunSettings
from cerebro_spark.search import (
    ASHAAlgorithm,
    HyperbandAlgorithm,
    SuccessiveHalvingAlgorithm,
    TPEAlgorithm,
    hp_choice,
    hp_uniform,
)
from cerebro_spark.testing.fakes import fake_dataset, fake_tasks
from cerebro_spark.training.model_spec import ModelSpec

FAKES = fake_tasks()
RATES = [1.0, 9.0, 2.0, 8.0, 3.0, 7.0, 4.0, 6.0, 5.0]


def run(store, algo, workers=2):
    def factory(trial):
        return ModelSpec(run_id="r1", model_id=trial.model_id, batch_size=8, params=dict(trial.params))

    settings = RunSettings(run_id="r1", metric="val_loss", mode="min", seed=1)
    driver = MopDriver(
        LocalBackend(workers), store, fake_dataset(workers), algo, factory, settings, tasks=FAKES
    )
    return driver.run()


def epochs_by_rate(result):
    return {m.params["rate"]: (m.status, m.epochs) for m in result.models.values()}


def test_asha_keeps_the_best_rates_to_the_end_and_stops_the_rest_early(store):
    algo = ASHAAlgorithm({"rate": hp_choice(RATES)}, num_models=9, max_epochs=9, seed=0, metric="val_loss",
                         mode="min", max_concurrent=4)  # fmt: skip
    result = run(store, algo)
    assert len(result.models) == 9 and not any(m.status == "paused" for m in result.models.values())
    completed = [m for m in result.models.values() if m.status == "completed"]
    stopped = [m for m in result.models.values() if m.status == "stopped"]
    assert completed and stopped and len(completed) + len(stopped) == 9
    assert all(m.epochs == 9 for m in completed) and all(m.epochs < 9 for m in stopped)
    assert all(m.reason.startswith("stopped at") for m in stopped)
    assert all(algo.stop_reasons[m.model_id].startswith("stopped at rung") for m in stopped)
    assert result.models[result.best_model_id].status == "completed"
    # every completed model beat the models stopped at the same rung after it was promoted there
    assert sum(m.epochs for m in result.models.values()) < 9 * 9 / 2


def test_asha_best_model_is_the_best_rate_reaching_the_end(store):
    space = {"rate": hp_choice(sorted(RATES))}  # increasing rates: later models are better
    algo = ASHAAlgorithm(space, num_models=9, max_epochs=9, seed=0, metric="val_loss", mode="min",
                         max_concurrent=9)  # fmt: skip
    result = run(store, algo)
    best = result.models[result.best_model_id]
    assert best.status == "completed"
    assert best.params["rate"] == max(
        m.params["rate"] for m in result.models.values() if m.status == "completed"
    )


def test_successive_halving_pauses_until_each_rung_completes(store):
    algo = SuccessiveHalvingAlgorithm({"rate": hp_choice(RATES)}, num_models=9, min_epochs=1, max_epochs=9,
                                      seed=0, metric="val_loss", mode="min")  # fmt: skip
    result = run(store, algo)
    params = {t.model_id: t.params["rate"] for t in algo.initial_trials()}
    by_id = {m: (r.status, r.epochs) for m, r in result.models.items()}
    best_rate = max(params.values())
    for model_id, rate in params.items():
        rank = sorted(params.values(), reverse=True).index(rate)
        expected = ("completed", 9) if rank == 0 else ("stopped", 3) if rank < 3 else ("stopped", 1)
        assert by_id[model_id] == expected, (model_id, rate)
    assert result.models[result.best_model_id].params["rate"] == best_rate
    for rung in (1, 3):
        rung_done = max(u.finished_at for u in result.units if u.epoch == rung)
        assert all(u.started_at >= rung_done for u in result.units if u.epoch == rung + 1)
    stopped = [m for m in result.models.values() if m.status == "stopped"]
    assert all(m.reason.startswith("stopped at rung") for m in stopped)


def test_successive_halving_survives_a_failed_model(store):
    space = {"rate": hp_choice([1.0, 2.0, 3.0]), "fail_at_epoch": hp_choice([None, None, 1])}
    algo = SuccessiveHalvingAlgorithm(space, num_models=6, min_epochs=1, max_epochs=3, seed=2,
                                      metric="val_loss", mode="min")  # fmt: skip
    result = run(store, algo)
    statuses = [m.status for m in result.models.values()]
    assert "paused" not in statuses and "running" not in statuses
    assert statuses.count("failed") == sum(t.params["fail_at_epoch"] == 1 for t in algo.initial_trials())
    assert statuses.count("completed") >= 1


def test_hyperband_runs_every_bracket_and_syncs_rungs_per_bracket(store):
    algo = HyperbandAlgorithm({"rate": hp_uniform(0.5, 10.0)}, max_epochs=9, seed=3, metric="val_loss",
                              mode="min")  # fmt: skip
    result = run(store, algo, workers=3)
    assert len(result.models) == sum(algo.bracket_sizes) == 17
    finals = [m for m in result.models.values() if m.status == "completed"]
    assert all(m.epochs == 9 for m in finals) and len(finals) == 1 + 1 + 3
    bracket0 = {f"m{i:04d}" for i in range(9)}
    rung_done = max(u.finished_at for u in result.units if u.model_id in bracket0 and u.epoch == 1)
    assert all(u.started_at >= rung_done for u in result.units if u.model_id in bracket0 and u.epoch == 2)


def test_tpe_proposes_exactly_num_models_and_ends(store):
    algo = TPEAlgorithm({"rate": hp_uniform(0.5, 10.0)}, num_models=7, num_epochs=2, seed=0, metric="val_loss",
                        mode="min", max_concurrent=4)  # fmt: skip
    result = run(store, algo)
    assert sorted(result.models) == [f"m{i:04d}" for i in range(7)]
    assert all(m.status == "completed" and m.epochs == 2 for m in result.models.values())
    assert len(algo.told) == 7
