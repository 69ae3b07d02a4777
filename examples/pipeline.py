"""A model selection as the last stage of a Spark ML Pipeline, saved and loaded in a new process.

Builds ``Pipeline([VectorAssembler, StandardScaler, StringIndexer, GridSearch])`` over synthetic rows
(generated here), fits it, saves the fitted ``PipelineModel``, loads it with ``PipelineModel.load`` in a
fresh Python process, scores the same held-out rows there and checks that the predictions are identical.

    python examples/pipeline.py [--rows 2000] [--epochs 2] [--out /tmp/cerebro-pipeline]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def estimator_gen_fn(params):
    import keras

    from cerebro_spark.keras import KerasEstimator

    model = keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(params["width"], activation="relu"),
        keras.layers.Dense(3, activation="softmax"),
    ])  # fmt: skip
    return KerasEstimator(model=model, optimizer=keras.optimizers.Adam(params["lr"]),
                          loss="sparse_categorical_crossentropy", metrics=["accuracy"], batch_size=32)  # fmt: skip


def make_dataframe(spark, num_rows: int, seed: int):
    """Four raw features on very different scales and a string label of three classes."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((num_rows, 4)) * [1.0, 100.0, 0.01, 5.0] + [0.0, 500.0, 0.0, -3.0]
    score = x[:, 0] + (x[:, 1] - 500) / 100 - 50 * x[:, 2]
    labels = np.where(score < -1, "low", np.where(score > 1, "high", "mid"))
    rows = [(i, *map(float, r), str(c)) for i, (r, c) in enumerate(zip(x, labels, strict=True))]
    return spark.createDataFrame(rows, "id long, f0 double, f1 double, f2 double, f3 double, kind string")


SCORE_IN_NEW_PROCESS = """
import json, sys
from pyspark.sql import SparkSession
from pyspark.ml import PipelineModel
from cerebro_spark import trust_pickles
spark = SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false").getOrCreate()
with trust_pickles():  # our own save: its estimator_gen_fn is a pickle, which runs code when loaded
    model = PipelineModel.load(sys.argv[1])
scored = model.transform(spark.read.parquet(sys.argv[2])).select("id", "prediction", "probability").orderBy("id")
json.dump([(r.id, r.prediction, list(r.probability)) for r in scored.collect()], open(sys.argv[3], "w"))
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--master", default="local[2]", help="e.g. spark://host:7077 under spark-submit")
    parser.add_argument(
        "--out", default=None, help="folder for the Store and the saved pipeline (default: a temp dir)"
    )
    args = parser.parse_args(argv)

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["PYSPARK_PYTHON"] = sys.executable
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import StandardScaler, StringIndexer, VectorAssembler
    from pyspark.sql import SparkSession

    from cerebro_spark import SparkBackend, Store
    from cerebro_spark.tune import GridSearch, hp_choice

    out = Path(args.out or tempfile.mkdtemp(prefix="cerebro-pipeline-"))
    spark = SparkSession.builder.master(args.master).config("spark.ui.enabled", "false").getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    train, test = make_dataframe(spark, args.rows, seed=1), make_dataframe(spark, 200, seed=2)

    search = GridSearch(
        backend=SparkBackend(spark, num_workers=2), store=Store.create(str(out / "store")),
        estimator_gen_fn=estimator_gen_fn, search_space={"width": hp_choice([8, 32]), "lr": hp_choice([1e-2, 3e-3])},
        num_epochs=args.epochs, evaluation_metric="val_accuracy", validation=0.2,
        feature_columns=["features"], label_columns=["label"], seed=7, verbose=0,
    )  # fmt: skip
    pipeline = Pipeline(stages=[
        VectorAssembler(inputCols=["f0", "f1", "f2", "f3"], outputCol="raw"),
        StandardScaler(inputCol="raw", outputCol="features", withMean=True),
        StringIndexer(inputCol="kind", outputCol="label"),
        search,
    ])  # fmt: skip
    pipeline.write().overwrite().save(str(out / "pipeline"))  # the unfitted pipeline saves too
    model = pipeline.fit(train)
    print(model.stages[-1].leaderboard().to_string())

    model.write().overwrite().save(str(out / "pipeline_model"))
    test.write.mode("overwrite").parquet(str(out / "test.parquet"))
    here = [
        (r.id, r.prediction, list(r.probability))
        for r in model.transform(test).select("id", "prediction", "probability").orderBy("id").collect()
    ]
    env = {  # a process of its own: not attached to this driver's JVM (spark-submit sets PYSPARK_GATEWAY_*)
        **{k: v for k, v in os.environ.items() if not k.startswith("PYSPARK_GATEWAY_")},
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")])),
    }
    subprocess.run(
        [sys.executable, "-c", SCORE_IN_NEW_PROCESS, str(out / "pipeline_model"), str(out / "test.parquet"),
         str(out / "predictions.json")],
        env=env, check=True,
    )  # fmt: skip
    there = [(i, p, q) for i, p, q in json.loads((out / "predictions.json").read_text())]
    accuracy = np.mean([p == label for (_, p, _), label in zip(here, _labels(model, test), strict=True)])
    print(f"saved to {out / 'pipeline_model'}; a new process loaded it and scored {len(there)} rows")
    print(f"identical predictions: {here == there}; held-out accuracy of the best model: {accuracy:.3f}")
    spark.stop()
    if here != there:
        sys.exit(1)


def _labels(model, test):
    indexed = model.transform(test).select("id", "label").orderBy("id").collect()
    return [int(r.label) for r in indexed]


if __name__ == "__main__":
    main()
