"""MLflow tracking of a search on fake tasks, read back from a real local tracking store (SQLite,
created by the test). About 10 s: importing MLflow and creating its tables."""

from __future__ import annotations

import pytest

from cerebro_spark.backend.local import LocalBackend
from cerebro_spark.driver import MopDriver, RunSettings
from cerebro_spark.search import GridSearchAlgorithm, hp_choice
from cerebro_spark.testing.fakes import fake_dataset, fake_tasks
from cerebro_spark.training.model_spec import ModelSpec

pytest.importorskip("mlflow")
# MLflow's SQL store still uses a loader strategy that SQLAlchemy 2.1 deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")

from cerebro_spark.observers.tracking import MlflowCallback  # noqa: E402

RUN = "r-mlflow"


def test_parent_run_and_a_nested_run_per_model_with_params_and_epoch_metrics(store, tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    params: dict[str, dict] = {}

    def factory(trial):
        params[trial.model_id] = dict(trial.params)
        return ModelSpec(run_id=RUN, model_id=trial.model_id, batch_size=8, params=dict(trial.params))

    callback = MlflowCallback(RUN, "cerebro-test", "val_loss", "min", hparams=params, tracking_uri=uri)
    space = {"rate": hp_choice([1.0, 4.0]), "fail_at_epoch": hp_choice([None, 2])}
    settings = RunSettings(run_id=RUN, metric="val_loss", mode="min", seed=1)
    driver = MopDriver(LocalBackend(2), store, fake_dataset(2), GridSearchAlgorithm(space, 3), factory,
                       settings, tasks=fake_tasks(), callbacks=[callback])  # fmt: skip
    callback.bind(driver.models)
    result = driver.run()
    callback.close(result)

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("cerebro-test")
    runs = client.search_runs([experiment.experiment_id])
    parent = [r for r in runs if r.info.run_name == RUN]
    assert len(parent) == 1 and parent[0].info.status == "FINISHED"
    parent = parent[0]
    assert parent.data.tags["cerebro.best_model_id"] == result.best_model_id
    best = result.models[result.best_model_id].best_metrics()["val_loss"]
    assert parent.data.metrics["best_val_loss"] == pytest.approx(best)

    children = {
        r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    }
    assert set(children) == set(result.models)
    for model_id, record in result.models.items():
        child = children[model_id]
        assert child.data.params == {k: str(v) for k, v in record.params.items()}
        history = client.get_metric_history(child.info.run_id, "val_loss")
        assert [(m.step, m.value) for m in history] == [
            (e.epoch, pytest.approx(e.metrics["val_loss"])) for e in record.history
        ]
        expected = {"completed": "FINISHED", "failed": "FAILED"}[record.status]
        assert child.info.status == expected, model_id
        assert {"loss", "val_loss", "val_accuracy", "train_seconds"} <= set(child.data.metrics)
    assert sorted(len(r.history) for r in result.models.values()) == [
        1,
        1,
        3,
        3,
    ]  # the failures logged epoch 1


def test_the_best_model_is_logged_as_an_mlflow_keras_model(store, tmp_path):
    import keras
    import mlflow.keras
    import numpy as np
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    loaded = []

    def load_model(model_id, version):  # what run_search passes: the model at a checkpoint version
        loaded.append((model_id, version))
        keras.utils.set_random_seed(version)
        return keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])

    def factory(trial):
        return ModelSpec(run_id=RUN, model_id=trial.model_id, batch_size=8, params=dict(trial.params))

    # artifacts go where the experiment says: under tmp_path, not MLflow's default ./mlruns
    MlflowClient(tracking_uri=uri).create_experiment(
        "cerebro-best", artifact_location=(tmp_path / "art").as_uri()
    )
    callback = MlflowCallback(RUN, "cerebro-best", "val_loss", "min", tracking_uri=uri, load_model=load_model)
    settings = RunSettings(run_id=RUN, metric="val_loss", mode="min", seed=1)
    driver = MopDriver(LocalBackend(2), store, fake_dataset(2), GridSearchAlgorithm({"rate": hp_choice([1.0, 4.0])}, 2),
                       factory, settings, tasks=fake_tasks(), callbacks=[callback])  # fmt: skip
    callback.bind(driver.models)
    result = driver.run()
    callback.close(result)

    best = result.models[result.best_model_id]
    assert loaded == [(result.best_model_id, best.best_version)]
    client = MlflowClient(tracking_uri=uri)
    artifacts = {a.path for a in client.list_artifacts(callback.parent_run_id, "best_model")}
    assert "best_model/MLmodel" in artifacts
    assert (tmp_path / "art").is_dir()
    local = client.download_artifacts(callback.parent_run_id, "best_model", str(tmp_path / "dl"))
    again = mlflow.keras.load_model(local)
    x = np.ones((2, 3), np.float32)
    np.testing.assert_allclose(
        again.predict(x, verbose=0), load_model(result.best_model_id, best.best_version).predict(x, verbose=0)
    )
