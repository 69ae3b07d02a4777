"""Benchmark: the core workload of MOP on a local Spark, and how much of the wall time is training.

Workload: a grid of 8 Keras MLPs (widths 8/64 x 4 learning rates) x 3 epochs on 20,000 synthetic
rows x 20 features, 2 workers, validation 20%. Prints and writes ``benchmarks/results/mop_core.md``:

- wall time of the search (workers up, until the last unit) and of the whole ``fit``;
- worker utilization = sum of per-unit times on the workers / (P x search wall time), both for the
  whole unit (restore + train + save) and for training alone;
- mean per-hop overhead (dispatch latency both ways + checkpoint restore + save) next to the mean
  sub-epoch training time, and their ratio;
- a baseline in the same script: the same 8 models x 3 epochs trained one after the other in this
  process with plain ``keras.Model.fit`` on all the training rows (what MOP must beat with 2 workers).

Usage: ``python benchmarks/bench_mop.py [--master local[2]] [--rows 20000] [--epochs 3]``. Keras runs on the
backend of ``KERAS_BACKEND`` (the workers follow the driver): ``KERAS_BACKEND=jax python benchmarks/bench_mop.py
--out benchmarks/results/mop_core_jax.md`` gives the JAX figures beside TensorFlow's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

from quickstart import estimator_gen_fn  # noqa: E402
from synthetic import make_dataframe, make_rows  # noqa: E402

WIDTHS = [8, 64]
RATES = [3e-2, 1e-2, 3e-3, 1e-3]


def run_mop(spark, args, store_dir: str):
    from cerebro_spark import SparkBackend, Store
    from cerebro_spark.tune import GridSearch, hp_choice

    df = make_dataframe(spark, args.rows, seed=args.seed).cache()
    df.count()
    search = GridSearch(
        backend=SparkBackend(spark, num_workers=args.workers), store=Store.create(store_dir),
        estimator_gen_fn=estimator_gen_fn,
        search_space={"width": hp_choice(WIDTHS), "lr": hp_choice(RATES), "batch_size": 64},
        num_epochs=args.epochs, evaluation_metric="val_accuracy", validation=0.2,
        feature_columns=["features"], label_columns=["label"], seed=args.seed, verbose=0,
    )  # fmt: skip
    start = time.perf_counter()
    result = search.fit(df)
    fit_wall = time.perf_counter() - start
    return result, fit_wall


def run_sequential(args) -> float:
    """Baseline: the same models, one at a time, plain Keras on the same training rows."""
    x, y = make_rows(args.rows, seed=args.seed)
    n_train = int(len(x) * 0.8)
    start = time.perf_counter()
    for width in WIDTHS:
        for lr in RATES:
            model = estimator_gen_fn({"width": width, "lr": lr, "batch_size": 64}).getModel()
            import keras

            model.compile(
                optimizer=keras.optimizers.Adam(lr), loss="binary_crossentropy", metrics=["accuracy"]
            )
            model.fit(x[:n_train], y[:n_train], batch_size=64, epochs=args.epochs, verbose=0)
            model.evaluate(x[n_train:], y[n_train:], batch_size=1024, verbose=0)
    return time.perf_counter() - start


def summarize(result, fit_wall: float, sequential_wall: float, args) -> str:
    run = result.result
    train = [u for u in run.units if u.kind == "train"]
    busy = sum(u.finished_at - u.started_at for u in run.units)
    training = sum(u.timings.get("train_s", 0.0) + u.timings.get("eval_s", 0.0) for u in run.units)
    p, wall = run.num_workers, run.wall_seconds
    hops = [
        (u.started_at - u.submitted_at)
        + (u.received_at - u.finished_at)
        + u.timings["load_s"]
        + u.timings["save_s"]
        for u in train
    ]
    sub_epoch = [u.timings["train_s"] for u in train]
    import keras

    lines = [
        f"# MOP core benchmark ({len(run.models)} models x {args.epochs} epochs, {args.rows} rows, "
        f"{p} workers, {args.master}, Keras on {keras.backend.backend()})",
        "",
        "| measure | value |",
        "|---|---|",
        f"| search wall time (workers up -> last unit) | {wall:.1f} s |",
        f"| whole fit wall time (import Keras' backend, build models, prepare data, start workers, search, collect) | {fit_wall:.1f} s |",
        f"| worker utilization, whole units: sum(unit time) / (P x wall) | {busy / (p * wall):.3f} |",
        f"| worker utilization, training and evaluation only | {training / (p * wall):.3f} |",
        f"| mean per-hop overhead (dispatch both ways + restore + save) | {1000 * statistics.mean(hops):.1f} ms |",
        f"| mean sub-epoch training time | {1000 * statistics.mean(sub_epoch):.1f} ms |",
        f"| hop overhead / sub-epoch training | {statistics.mean(hops) / statistics.mean(sub_epoch):.3f} |",
        f"| sequential baseline (plain Keras, one model at a time, same process) | {sequential_wall:.1f} s |",
        f"| speed-up of the MOP search over the sequential baseline | {sequential_wall / wall:.2f}x |",
        f"| best model | {result.best_model_id} val_accuracy "
        f"{run.models[result.best_model_id].best_metrics()['val_accuracy']:.4f} |",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "mop_core.md"))
    args = parser.parse_args()

    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master(args.master).appName("cerebro-bench-core")
             .config("spark.ui.showConsoleProgress", "false").getOrCreate())  # fmt: skip
    spark.sparkContext.setLogLevel("ERROR")
    try:
        with tempfile.TemporaryDirectory(prefix="cerebro-bench-") as store_dir:
            result, fit_wall = run_mop(spark, args, store_dir)
    finally:
        spark.stop()
    sequential_wall = run_sequential(args)
    table = summarize(result, fit_wall, sequential_wall, args)
    print(table)
    Path(args.out).write_text(table)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
