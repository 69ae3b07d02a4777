"""TensorBoard files of a search on the in-process backend with fake tasks, read back with
TensorBoard's own EventAccumulator (scalars and the HParams plugin's data)."""

from __future__ import annotations

import os
import sys
import types

import pytest

from cerebro_spark.backend.local import LocalBackend
from cerebro_spark.driver import MopDriver, RunSettings
from cerebro_spark.search import GridSearchAlgorithm, hp_choice
from cerebro_spark.store import layout
from cerebro_spark.store.base import Store
from cerebro_spark.testing.fakes import fake_dataset, fake_tasks

pytest.importorskip("tensorboard")
# TensorBoard's readers import TensorFlow (seconds) unless this marker module exists; then they use
# their own TF-free stub, which is all reading local event files needs. Writing never imports TF.
if "tensorflow" not in sys.modules:
    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.plugins.hparams import metadata as hparams_metadata  # noqa: E402

from cerebro_spark.observers.tensorboard import TensorBoardCallback  # noqa: E402
from cerebro_spark.training.model_spec import ModelSpec  # noqa: E402

RUN = "r-tb"


def run_search(store, epochs=2, workers=2):
    params: dict[str, dict] = {}

    def factory(trial):
        params[trial.model_id] = dict(trial.params)
        return ModelSpec(run_id=RUN, model_id=trial.model_id, batch_size=8, params=dict(trial.params))

    callback = TensorBoardCallback(store, RUN, hparams=params)
    space = {"rate": hp_choice([1.0, 4.0]), "opt": hp_choice(["adam", None])}
    settings = RunSettings(run_id=RUN, metric="val_loss", mode="min", seed=1)
    driver = MopDriver(LocalBackend(workers), store, fake_dataset(workers), GridSearchAlgorithm(space, epochs),
                       factory, settings, tasks=fake_tasks(), callbacks=[callback])  # fmt: skip
    try:
        return driver.run()
    finally:
        callback.close()


def load(folder):
    accumulator = EventAccumulator(folder, size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def scalars(accumulator, tag):
    return [(e.step, e.value) for e in accumulator.Scalars(tag)]


def check_model_files(root, result, model_id, epochs=2, workers=2):
    history = result.models[model_id].history
    train, validation, top = load(f"{root}/train"), load(f"{root}/validation"), load(root)
    assert scalars(train, "epoch_loss") == [(e.epoch, pytest.approx(e.metrics["loss"])) for e in history]
    assert scalars(validation, "epoch_loss") == [
        (e.epoch, pytest.approx(e.metrics["val_loss"])) for e in history
    ]
    assert [s for s, _ in scalars(validation, "epoch_accuracy")] == list(range(1, epochs + 1))
    assert [s for s, _ in scalars(train, "epoch_train_seconds")] == list(range(1, epochs + 1))
    units = scalars(train, "sub_epoch_seconds")
    assert len(units) == epochs * workers and [s for s, _ in units] == list(range(1, epochs * workers + 1))
    assert {"sub_epoch_load_s", "sub_epoch_train_s"} <= set(train.Tags()["scalars"])
    content = top.PluginTagToContent(hparams_metadata.PLUGIN_NAME)
    start = hparams_metadata.parse_session_start_info_plugin_data(
        content[hparams_metadata.SESSION_START_INFO_TAG]
    )
    return start


def test_scalars_and_hparams_are_written_into_a_local_store(store):
    result = run_search(store)
    for model_id, record in result.models.items():
        root = store.local_path(layout.tensorboard_root(RUN, model_id))
        start = check_model_files(root, result, model_id)
        assert start.group_name == model_id
        assert start.hparams["rate"].number_value == record.params["rate"]
        opt = record.params["opt"]
        assert start.hparams["opt"].string_value == ("None" if opt is None else opt)


def test_files_are_uploaded_to_a_store_that_is_not_local(tmp_path):
    store = Store.create(f"memory://{tmp_path.name}-tb")
    assert store.local_path("x") is None
    result = run_search(store)
    model_id = next(iter(result.models))
    key = layout.tensorboard_root(RUN, model_id)
    local = tmp_path / "copy"
    for sub in ("", "train", "validation"):
        folder = f"{key}/{sub}" if sub else key
        names = [n for n in store.listdir(folder) if n.startswith("events.out.tfevents.")]
        assert len(names) == 1, (sub, store.listdir(folder))
        os.makedirs(local / sub, exist_ok=True)
        store.download(f"{folder}/{names[0]}", str(local / sub / names[0]))
    check_model_files(str(local), result, model_id)


def test_a_store_that_fails_does_not_stop_the_search(store, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("cerebro_spark.observers.tensorboard._EventFile.write", broken)
    result = run_search(store)
    assert all(m.status == "completed" for m in result.models.values())
    assert "TensorBoard files of run r-tb are no longer written: disk full" in caplog.text


def test_the_tensorboard_param_adds_the_callback_and_closing_never_raises(store, caplog):
    from cerebro_spark.observers.search_observers import SearchObservers

    algorithm = GridSearchAlgorithm({"rate": 1.0}, 1)
    for on in (True, False):
        observers = SearchObservers.create(
            tensorboard=on,
            mlflow_experiment=None,
            verbose=0,
            dataset=fake_dataset(2),
            store=store,
            run_id=RUN,
            metric="loss",
            mode="min",
            max_epochs=algorithm.max_epochs,
            params={},
        )
        assert [type(c).__name__ for c in observers.callbacks] == (["TensorBoardCallback"] if on else [])

    class Broken(TensorBoardCallback):
        def close(self, result=None):
            raise RuntimeError("cannot close")

    SearchObservers([Broken(store, RUN)]).close(None)
    assert "could not close Broken" in caplog.text
