"""Pipelines and persistence: every Spark ML class saves and loads; a fitted Pipeline predicts the same in a
new Python process; bad saves fail with clear errors."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from cerebro_spark import trust_pickles

pytestmark = [pytest.mark.spark, pytest.mark.keras]

ROOT = Path(__file__).resolve().parents[2]


def gen_fn(params):
    """Two inputs in, two classes out: a model of 22 weights."""
    import keras

    from cerebro_spark.keras import KerasEstimator

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"),
                              keras.layers.Dense(2, activation="softmax")])  # fmt: skip
    return KerasEstimator(model=model, optimizer=keras.optimizers.Adam(params["lr"]),
                          loss="sparse_categorical_crossentropy", metrics=["accuracy"], batch_size=16)  # fmt: skip


def rows(spark, n, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3)) * [1.0, 10.0, 0.1] + [0.0, 5.0, -1.0]
    data = [(i, *map(float, r), "yes" if r[0] + (r[1] - 5) / 10 > 0 else "no") for i, r in enumerate(x)]
    return spark.createDataFrame(data, "id long, a double, b double, c double, y string")


def grid_search(store, **overrides):
    from cerebro_spark import LocalBackend
    from cerebro_spark.tune import GridSearch, hp_choice

    params = dict(backend=LocalBackend(2), store=store, estimator_gen_fn=gen_fn,
                  search_space={"lr": hp_choice([3e-2, 1e-3])}, num_epochs=1, validation=0.25,
                  evaluation_metric="val_accuracy", feature_columns=["features"], label_columns=["label"],
                  seed=5, verbose=0, tensorboard=False)  # fmt: skip
    params.update(overrides)
    return GridSearch(**params)


def pipeline(store):
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import StandardScaler, StringIndexer, VectorAssembler

    return Pipeline(stages=[
        VectorAssembler(inputCols=["a", "b", "c"], outputCol="raw"),
        StandardScaler(inputCol="raw", outputCol="features", withMean=True),
        StringIndexer(inputCol="y", outputCol="label"),
        grid_search(store),
    ])  # fmt: skip


@pytest.fixture(scope="module")
def fitted(spark, tmp_path_factory):
    """A Pipeline saved, loaded and then fitted (so the loaded search is what trains)."""
    from pyspark.ml import Pipeline

    from cerebro_spark.store.base import Store

    tmp = tmp_path_factory.mktemp("pipeline")
    store = Store.create(str(tmp / "store"))
    pipeline(store).write().save(str(tmp / "pipeline"))
    with trust_pickles():  # it holds estimator_gen_fn, a pickle
        loaded = Pipeline.load(str(tmp / "pipeline"))
    model = loaded.fit(rows(spark, 96, seed=1))
    return tmp, store, loaded, model


def test_pipeline_model_predicts_the_same_in_a_new_process(spark, fitted):
    from cerebro_spark.ml import ModelSelectionModel

    tmp, _, _, model = fitted
    assert isinstance(model.stages[-1], ModelSelectionModel)
    test = rows(spark, 40, seed=2)
    test.write.parquet(str(tmp / "test.parquet"))
    model.write().overwrite().save(str(tmp / "pipeline_model"))
    expected = [
        (r.id, r.prediction, list(r.probability))
        for r in model.transform(test).select("id", "prediction", "probability").orderBy("id").collect()
    ]

    script = textwrap.dedent(f"""
        import json
        from pyspark.sql import SparkSession
        from pyspark.ml import PipelineModel
        spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
        model = PipelineModel.load({str(tmp / "pipeline_model")!r})
        out = model.transform(spark.read.parquet({str(tmp / "test.parquet")!r}))
        rows = [(r.id, r.prediction, list(r.probability)) for r in out.select("id", "prediction", "probability").orderBy("id").collect()]
        with open({str(tmp / "predictions.json")!r}, "w") as f:
            json.dump(rows, f)
    """)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "CEREBRO_TRUST_PICKLES": "1",  # a job loading its own saves
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=500
    )
    assert done.returncode == 0, done.stderr[-3000:]
    got = [(i, p, q) for i, p, q in json.loads((tmp / "predictions.json").read_text())]
    assert len(got) == 40 and got == expected  # identical floats, not close ones


def test_loaded_pipeline_keeps_every_stage_and_param(fitted):
    _, store, loaded, _ = fitted
    search = loaded.getStages()[-1]
    original = grid_search(store)
    assert type(search) is type(original)
    assert search.getOrDefault("estimator_gen_fn") is gen_fn  # a module function: pickled by reference
    assert repr(search.getOrDefault("search_space")) == repr(original.getOrDefault("search_space"))
    assert search.getStore() == store and search.getBackend().num_workers == 2
    for name in (
        "num_epochs",
        "validation",
        "evaluation_metric",
        "feature_columns",
        "seed",
        "verbose",
        "mode",
    ):
        assert search.getOrDefault(name) == original.getOrDefault(name), name
    assert [type(s).__name__ for s in loaded.getStages()[:3]] == [
        "VectorAssembler",
        "StandardScaler",
        "StringIndexer",
    ]


def _same_weights(a, b):
    return all(
        np.array_equal(x, y) for x, y in zip(a.keras().get_weights(), b.keras().get_weights(), strict=True)
    )


def test_model_selection_model_round_trip_and_other_models(spark, fitted, tmp_path):
    from cerebro_spark.errors import PersistenceError
    from cerebro_spark.ml import ModelSelectionModel

    _, store, _, model = fitted
    result = model.stages[-1]
    other = next(m for m in result.get_all_model_params() if m != result.best_model_id)
    result.write().save(str(tmp_path / "best_only"))
    result.write().option("saveAllModels", "true").save(str(tmp_path / "all"))

    loaded = ModelSelectionModel.load(str(tmp_path / "best_only"), trust_pickles=True)
    assert (loaded.run_id, loaded.best_model_id) == (result.run_id, result.best_model_id)
    assert loaded.leaderboard().equals(result.leaderboard())
    assert loaded.get_all_model_history() == result.get_all_model_history()
    assert loaded.get_all_model_params() == result.get_all_model_params()
    assert _same_weights(loaded.get_best_model(), result.get_best_model())
    assert _same_weights(loaded.get_model(other), result.get_model(other))  # from the run's Store
    assert sorted(os.listdir(tmp_path / "best_only" / "models")) == [result.best_model_id]

    moved = Path(store.url + "-moved")
    shutil.move(store.url, moved)  # the run's Store is gone
    try:
        without_store = ModelSelectionModel.load(str(tmp_path / "best_only"), trust_pickles=True)
        with pytest.raises(PersistenceError, match=rf"Model '{other}' of run .*saveAllModels.*Store"):
            without_store.get_model(other)
        assert _same_weights(without_store.get_best_model(), result.get_best_model())
        every = ModelSelectionModel.load(str(tmp_path / "all"), trust_pickles=True)
        assert _same_weights(every.get_model(other), result.get_model(other))
    finally:
        shutil.rmtree(store.url, ignore_errors=True)
        shutil.move(moved, store.url)


def test_estimator_round_trip_then_refit_and_model_round_trip(spark, store, tmp_path):
    import keras

    from cerebro_spark import LocalBackend
    from cerebro_spark.keras import KerasEstimator, KerasModel

    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")])
    est = KerasEstimator(model=model, optimizer=keras.optimizers.SGD(0.1, momentum=0.5), loss="binary_crossentropy",
                         metrics=["accuracy", keras.metrics.AUC(name="auc")], batch_size=8, custom_objects={"act": keras.activations.gelu},
                         feature_columns=["x"], label_columns=["y"], store=store, backend=LocalBackend(2), num_epochs=2,
                         seed=3, verbose=0, tensorboard=False, prediction_col="p")  # fmt: skip
    est.write().save(str(tmp_path / "est"))
    loaded = KerasEstimator.load(str(tmp_path / "est"), trust_pickles=True)

    assert loaded.uid == est.uid
    for name in (
        "loss",
        "batch_size",
        "feature_columns",
        "label_columns",
        "num_epochs",
        "seed",
        "prediction_col",
    ):
        assert loaded.getOrDefault(name) == est.getOrDefault(name), name
    assert loaded.getOrDefault("optimizer").get_config() == est.getOrDefault("optimizer").get_config()
    metrics = loaded.getOrDefault("metrics")
    assert metrics[0] == "accuracy" and metrics[1].get_config() == est.getOrDefault("metrics")[1].get_config()
    assert loaded.getOrDefault("custom_objects") == {"act": keras.activations.gelu}
    assert json.dumps(loaded.getModel().get_config()) == json.dumps(
        model.get_config()
    )  # tuples come back as lists
    assert all(
        np.array_equal(a, b)
        for a, b in zip(loaded.getModel().get_weights(), model.get_weights(), strict=True)
    )
    assert loaded.getStore() == store and isinstance(loaded.getBackend(), LocalBackend)

    from pyspark.ml import Pipeline
    from pyspark.ml.feature import VectorAssembler

    rng = np.random.default_rng(0)
    df = spark.createDataFrame(
        [(float(a), float(b), float(a > b)) for a, b in rng.standard_normal((64, 2))],
        "a double, b double, y double",
    )
    stages = Pipeline(stages=[VectorAssembler(inputCols=["a", "b"], outputCol="x"), loaded]).fit(df).stages
    fitted = stages[-1]  # the loaded estimator trains, as a Pipeline stage
    assert isinstance(fitted, KerasModel) and len(fitted.history["loss"]) == 2
    df = stages[0].transform(df)

    fitted.write().save(str(tmp_path / "model"))
    again = KerasModel.load(str(tmp_path / "model"), trust_pickles=True)
    assert again.history == fitted.history and again.getOrDefault("prediction_col") == "p"
    assert again.transform(df).select("p").collect() == fitted.transform(df).select("p").collect()
    assert (tmp_path / "model" / "model.keras").is_file()  # a real .keras file beside the metadata
    metadata = json.loads(Path(glob.glob(str(tmp_path / "model" / "metadata" / "part-*"))[0]).read_text())
    assert metadata["cerebroFormatVersion"] == 1 and metadata["cerebroVersion"]
    assert "model.keras" not in metadata["paramMap"] and len(json.dumps(metadata)) < 10_000


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        ("GridSearch", {}),
        ("RandomSearch", {"num_models": 3}),
        ("SuccessiveHalvingSearch", {"num_models": 4, "max_epochs": 4, "reduction_factor": 2}),
        ("HyperbandSearch", {"min_epochs": 2, "max_epochs": 8}),
        ("ASHASearch", {"num_models": 5, "max_concurrent": 3}),
        ("TPESearch", {"num_models": 6, "num_epochs": 2}),
    ],
)
def test_every_search_round_trips(spark, store, tmp_path, name, extra):
    import cerebro_spark.tune as tune
    from cerebro_spark.errors import PersistenceError

    search = getattr(tune, name)(estimator_gen_fn=gen_fn, search_space={"lr": tune.hp_loguniform(1e-4, 1e-1)},
                                 store=store, feature_columns=["f"], label_columns=["l"], seed=9, **extra)  # fmt: skip
    search.write().overwrite().save(str(tmp_path / name))
    search.write().overwrite().save(str(tmp_path / name))  # overwrite() replaces what is there
    with pytest.raises(PersistenceError, match=r"something is saved there already.*overwrite\(\)"):
        search.save(str(tmp_path / name))
    loaded = getattr(tune, name).load(str(tmp_path / name), trust_pickles=True)
    assert type(loaded) is type(search) and loaded.uid == search.uid
    assert loaded.getOrDefault("estimator_gen_fn") is gen_fn
    assert repr(loaded.getOrDefault("search_space")) == repr(search.getOrDefault("search_space"))
    plain = {
        p.name: v
        for p, v in search.extractParamMap().items()
        if p.name not in ("estimator_gen_fn", "search_space", "store")
    }
    assert {p.name: v for p, v in loaded.extractParamMap().items() if p.name in plain} == plain
    assert loaded.getStore() == store


def _metadata_file(path):
    return Path(glob.glob(str(path / "metadata" / "part-*"))[0])


def _rewrite_metadata(path, change):
    file = _metadata_file(path)
    file.write_text(change(file.read_text()))
    for crc in glob.glob(str(path / "metadata" / ".*.crc")):  # Hadoop checks them on read
        os.remove(crc)


def test_newer_format_version_is_a_clear_error(spark, tmp_path):
    import keras

    from cerebro_spark.errors import PersistenceError
    from cerebro_spark.keras import KerasModel

    model = KerasModel.from_keras(
        keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]), feature_columns=["x"]
    )
    model.write().save(str(tmp_path / "m"))
    _rewrite_metadata(
        tmp_path / "m", lambda text: text.replace('"cerebroFormatVersion":1', '"cerebroFormatVersion":99')
    )
    with pytest.raises(
        PersistenceError, match=r"format version 99; cerebro_spark .* reads format versions up to 1"
    ):
        KerasModel.load(str(tmp_path / "m"))


def test_unloadable_function_is_a_clear_error(spark, store, tmp_path, monkeypatch):
    from cerebro_spark.errors import PersistenceError
    from cerebro_spark.tune import GridSearch, hp_choice

    (tmp_path / "user_functions_xyz.py").write_text("def make(params):\n    return None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import user_functions_xyz

    GridSearch(estimator_gen_fn=user_functions_xyz.make, search_space={"a": hp_choice([1])}, store=store
               ).write().save(str(tmp_path / "search"))  # fmt: skip
    monkeypatch.delitem(sys.modules, "user_functions_xyz")
    (tmp_path / "user_functions_xyz.py").unlink()
    with pytest.raises(
        PersistenceError,
        match=r"Cannot load param 'estimator_gen_fn' of GridSearch \(ModuleNotFoundError.*user_functions_xyz.*"
        r"saved with cerebro_spark .*cloudpickle .*python ",
    ):
        GridSearch.load(str(tmp_path / "search"), trust_pickles=True)


def test_loading_with_the_wrong_class_is_a_clear_error(spark, store, tmp_path):
    from cerebro_spark.errors import PersistenceError
    from cerebro_spark.tune import GridSearch, RandomSearch

    GridSearch(estimator_gen_fn=gen_fn, store=store).write().save(str(tmp_path / "grid"))
    with pytest.raises(PersistenceError, match=r"RandomSearch.load cannot load .* GridSearch"):
        RandomSearch.load(str(tmp_path / "grid"))


# -- loading untrusted files ---------------------------------------------------------------------------


class _CreatesFile:
    """Unpickling this creates a file: the proof that a load ran code from a saved file."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_a_tampered_pickle_never_runs_on_load(spark, store, tmp_path):
    import cloudpickle

    from cerebro_spark.errors import PersistenceError, UntrustedFileError
    from cerebro_spark.tune import GridSearch

    GridSearch(estimator_gen_fn=gen_fn, store=store).write().save(str(tmp_path / "grid"))
    marker = tmp_path / "payload-ran"
    (tmp_path / "grid" / "params" / "estimator_gen_fn.pkl").write_bytes(
        cloudpickle.dumps(_CreatesFile(marker))
    )
    with pytest.raises(
        UntrustedFileError, match=r"unpickling '.*grid/params/estimator_gen_fn.pkl'.*trust_pickles=True"
    ):
        GridSearch.load(str(tmp_path / "grid"))  # the default: no pickle is loaded
    with pytest.raises(
        PersistenceError, match=r"'params/estimator_gen_fn.pkl' .* changed after it was saved"
    ):
        GridSearch.load(str(tmp_path / "grid"), trust_pickles=True)  # trusted, but not what was saved
    assert not marker.exists()


def test_pipeline_model_with_custom_objects_loads_only_when_trusted(spark, tmp_path):
    import keras
    from pyspark.ml import PipelineModel

    from cerebro_spark.errors import UntrustedFileError
    from cerebro_spark.keras import KerasModel

    def twice(x):
        return 2 * x

    net = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1), keras.layers.Activation(twice)])
    model = KerasModel.from_keras(net, feature_columns=["x"], custom_objects={"twice": twice})
    PipelineModel(stages=[model]).write().save(str(tmp_path / "p"))
    with pytest.raises(UntrustedFileError, match=r"custom objects of the model .*custom_objects.pkl"):
        PipelineModel.load(str(tmp_path / "p"))
    with trust_pickles():
        loaded = PipelineModel.load(str(tmp_path / "p")).stages[0]
    assert _same_weights(loaded, model)


def test_a_model_without_custom_objects_loads_without_unpickling(spark, tmp_path, monkeypatch):
    import cloudpickle
    import keras

    from cerebro_spark.keras import KerasModel

    model = KerasModel.from_keras(
        keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]), feature_columns=["x"]
    )
    model.write().save(str(tmp_path / "m"))

    def refuse(*args, **kwargs):
        raise AssertionError("a load unpickled something")

    monkeypatch.setattr(cloudpickle, "loads", refuse)
    monkeypatch.setattr("pickle.loads", refuse)
    assert _same_weights(KerasModel.load(str(tmp_path / "m")), model)
