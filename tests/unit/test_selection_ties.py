"""Selection: the best model by its best epoch; ties go to the model added first (deterministic)."""

from __future__ import annotations

from cerebro_spark.backend.local import LocalBackend
from cerebro_spark.driver import MopDriver, RunSettings
from cerebro_spark.search import GridSearchAlgorithm, hp_choice
from cerebro_spark.testing.fakes import fake_dataset, fake_tasks
from cerebro_spark.training.model_spec import ModelSpec


def run(store, rates, mode="min"):
    def factory(trial):
        return ModelSpec(run_id="r1", model_id=trial.model_id, batch_size=8, params=dict(trial.params))

    settings = RunSettings(run_id="r1", metric="val_loss", mode=mode, seed=1)
    algo = GridSearchAlgorithm({"rate": hp_choice(rates)}, num_epochs=2)
    return MopDriver(
        LocalBackend(2), store, fake_dataset(2), algo, factory, settings, tasks=fake_tasks()
    ).run()


def test_equal_models_tie_to_the_first_added_whatever_the_completion_order(store):
    for _ in range(3):  # the completion order of units varies between runs on threads; the choice must not
        result = run(store, [1.0, 4.0, 4.0, 2.0])
        assert result.best_model_id == "m0001"
        # a tie on the selection metric (training metrics may differ: partitions differ in size and
        # the two models visit them in different orders)
        assert (
            result.models["m0001"].best_metrics()["val_loss"]
            == result.models["m0002"].best_metrics()["val_loss"]
        )


def test_the_best_epoch_not_the_last_decides_under_max(store):
    result = run(store, [1.0, 4.0], mode="max")  # losses fall: under "max" the first epoch is the best
    assert all(m.best_epoch == 1 for m in result.models.values())
    assert result.best_model_id == "m0000"
    assert result.models["m0000"].best_version == 2 and result.models["m0000"].version == 4
