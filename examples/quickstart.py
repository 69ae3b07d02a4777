"""A small model selection with Model Hopper Parallelism on a local Spark: `make quickstart`.

Trains a grid of 8 Keras MLPs (2 widths x 4 learning rates) for 3 epochs on 20,000 synthetic rows
with 2 workers, using the default Store under ``store/`` at the repository root, then prints the
leaderboard, scores the best model on held-out rows with ``transform`` and says where the results are.

Run with ``--rows``/``--epochs``/``--workers``/``--master`` to change the workload, e.g.
``python examples/quickstart.py --master "local-cluster[2,1,1024]"``; ``--remote sc://host:15002`` runs it
from a Spark Connect client (``--remote "local[2]"`` starts a local Connect server; the ``connect`` extra).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from synthetic import make_dataframe  # noqa: E402


def estimator_gen_fn(params):
    import keras

    from cerebro_spark.keras import KerasEstimator

    model = keras.Sequential([
        keras.Input((20,)),
        keras.layers.Dense(params["width"], activation="relu"),
        keras.layers.Dense(params["width"], activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ])  # fmt: skip
    return KerasEstimator(
        model=model,
        optimizer=keras.optimizers.Adam(params["lr"]),
        loss="binary_crossentropy",
        metrics=["accuracy"],
        batch_size=params["batch_size"],
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument(
        "--remote", help="a Spark Connect URL (sc://host:port, or local[N]) instead of --master"
    )
    parser.add_argument("--store", default=str(HERE.parent / "store"))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--report", help="also write an HTML report of the search to this file")
    args = parser.parse_args(argv)

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("cerebro_spark").setLevel(logging.INFO)

    from pyspark.sql import SparkSession

    from cerebro_spark import SparkBackend, Store
    from cerebro_spark.tune import GridSearch, hp_choice

    if args.remote:  # Spark Connect: no SparkContext in this process
        spark = SparkSession.builder.remote(args.remote).appName("cerebro-spark-quickstart").getOrCreate()
    else:
        spark = (SparkSession.builder.master(args.master).appName("cerebro-spark-quickstart")
                 .config("spark.ui.showConsoleProgress", "false").getOrCreate())  # fmt: skip
        spark.sparkContext.setLogLevel("ERROR")
    try:
        df = make_dataframe(spark, args.rows + 2_000, seed=args.seed)
        train_df, test_df = df.randomSplit([float(args.rows), 2_000.0], seed=args.seed)
        search = GridSearch(
            backend=SparkBackend(spark, num_workers=args.workers),
            store=Store.create(args.store),
            estimator_gen_fn=estimator_gen_fn,
            search_space={"width": hp_choice([8, 64]), "lr": hp_choice([3e-2, 1e-2, 3e-3, 1e-3]),
                          "batch_size": 64},
            num_epochs=args.epochs, evaluation_metric="val_accuracy", validation=0.2,
            feature_columns=["features"], label_columns=["label"], seed=args.seed,
        )  # fmt: skip
        result = search.fit(train_df)

        board = result.leaderboard()
        columns = [
            "model_id",
            "param_width",
            "param_lr",
            "best_epoch",
            "val_accuracy",
            "val_loss",
            "accuracy",
        ]
        print("\nLeaderboard (best first):")
        print(board[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        run = result.result
        print(
            f"\nWall time {run.wall_seconds:.1f}s on {run.num_workers} workers, utilization {run.utilization():.2f}"
        )

        scored = result.transform(test_df)
        accuracy = scored.selectExpr("avg(cast((prediction > 0.5) = (label = 1) as double)) as acc").first()[
            "acc"
        ]
        print(
            f"Best model {result.best_model_id}: accuracy {accuracy:.3f} on {test_df.count()} held-out rows"
        )
        print(f"Results: {search.getStore().url}/runs/{result.run_id}/ (search.json, journal.jsonl, models/)")
        if args.report:
            print(f"Report: {result.report(args.report)}")
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
