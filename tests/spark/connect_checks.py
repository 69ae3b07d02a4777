"""Run by tests/spark/test_spark_connect.py in a process of its own: a Spark Connect session (a local
Connect server, started by pyspark) switches the whole process to Spark Connect, so it cannot share the
test session's process. Every check asserts; the last line printed is ``CONNECT CHECKS PASSED``.

``python connect_checks.py WORKDIR``: fit, transform, save and load, KerasEstimator.fit, fitMultiple
and a Pipeline. ``python connect_checks.py WORKDIR --unreachable``: executors that cannot reach the
client's control server fail the fit within seconds, with what to do.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from quickstart import estimator_gen_fn  # noqa: E402
from synthetic import make_dataframe  # noqa: E402


def search(spark, store_path: str, **overrides):
    from cerebro_spark import SparkBackend, Store
    from cerebro_spark.tune import GridSearch, hp_choice

    params = dict(
        backend=SparkBackend(spark, num_workers=2), store=Store.create(store_path),
        estimator_gen_fn=estimator_gen_fn,
        search_space={"width": hp_choice([4, 8]), "lr": hp_choice([1e-2]), "batch_size": 32},
        num_epochs=2, evaluation_metric="val_loss", validation=0.25,
        feature_columns=["features"], label_columns=["label"], seed=1, verbose=0,
    )  # fmt: skip
    params.update(overrides)
    return GridSearch(**params)


def check_everything(spark, work: Path, df) -> None:
    from pyspark.ml import Pipeline, PipelineModel

    from cerebro_spark import SparkBackend, Store
    from cerebro_spark.tune import ModelSelectionModel

    result = search(spark, str(work / "store")).fit(df)
    history = result.get_all_model_history()
    assert sorted(history) == ["m0000", "m0001"], history
    assert all(len(metrics["val_loss"]) == 2 for metrics in history.values()), history  # 2 epochs each
    scored = result.transform(df)
    assert {"prediction", "probability"} <= set(scored.columns) and scored.count() == df.count()

    result.save(str(work / "selection"))
    loaded = ModelSelectionModel.load(str(work / "selection"))
    assert loaded.best_model_id == result.best_model_id
    assert loaded.transform(df).select("prediction").collect() == scored.select("prediction").collect()

    est = estimator_gen_fn({"width": 4, "lr": 1e-2, "batch_size": 32})
    est.setParams(store=Store.create(str(work / "store-keras")), feature_columns=["features"],
                  label_columns=["label"], num_epochs=1, validation=0.25,
                  backend=SparkBackend(spark, num_workers=2))  # fmt: skip
    assert est.fit(df).transform(df).count() == df.count()
    fitted = list(est.fitMultiple(df, [{est.batch_size: 16}, {est.batch_size: 64}]))
    assert sorted(i for i, _ in fitted) == [0, 1]

    pipeline = Pipeline(stages=[search(spark, str(work / "store-pipeline"))]).fit(df)
    pipeline.write().overwrite().save(str(work / "pipeline"))
    reloaded = PipelineModel.load(str(work / "pipeline"))
    assert reloaded.transform(df).count() == df.count()
    print("fit, transform, save/load, KerasEstimator.fit, fitMultiple, Pipeline: ok")


def check_unreachable(spark, work: Path, df) -> None:
    from cerebro_spark import SparkBackend
    from cerebro_spark.errors import BackendError

    def closed_port(backend, bound):  # executors are told an address nobody listens on
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return "127.0.0.1", s.getsockname()[1]

    SparkBackend._worker_address = closed_port
    started = time.monotonic()
    try:
        search(spark, str(work / "store-unreachable")).fit(df)
    except BackendError as e:
        message = str(e)
    else:
        raise AssertionError("the fit succeeded although no worker could reach the client")
    elapsed = time.monotonic() - started
    assert "could not reach the driver" in message and "Spark Connect client" in message, message
    assert "bind_address" in message, message
    assert elapsed < 60, f"took {elapsed:.0f} s to fail"
    print(f"unreachable client: failed after {elapsed:.0f} s: ok")


def main() -> None:
    work = Path(sys.argv[1])
    os.environ["PYSPARK_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.remote("local[2]").getOrCreate()
    try:
        assert type(spark).__module__.startswith("pyspark.sql.connect"), type(spark)
        df = make_dataframe(spark, 400, seed=3)
        if "--unreachable" in sys.argv:
            check_unreachable(spark, work, df)
        else:
            check_everything(spark, work, df)
    finally:
        spark.stop()
    print("CONNECT CHECKS PASSED")


if __name__ == "__main__":
    main()
