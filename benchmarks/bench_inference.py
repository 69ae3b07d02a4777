"""Benchmark: rows per second of ``KerasModel.transform`` against plain ``model.predict`` on the same rows.

Workload: the quickstart MLP (20 features -> 64 -> 1, sigmoid: a binary classifier, so ``transform``
writes ``rawPrediction``, ``probability`` and ``prediction``) on 200,000 synthetic rows held in Spark's
memory cache (4 partitions), on ``local[2]``. ``transform`` is forced to compute every output column by
writing to Spark's ``noop`` format. The baseline, in the same script: ``model.predict`` on the same rows
as one numpy array in this process, with the same batch size. Both are warmed up first (Python workers
started, TensorFlow imported, the model loaded and traced); the best of ``--repeats`` timed passes counts.

Prints and writes ``benchmarks/results/inference.md``; the goal is a ratio >= 0.8.

Usage: ``python benchmarks/bench_inference.py [--master local[2]] [--rows 200000] [--batch-size 1024]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

from quickstart import estimator_gen_fn  # noqa: E402
from synthetic import make_rows  # noqa: E402


def cached_frame(spark, x, tmp: str, partitions: int):
    """The rows as a cached DataFrame with an array<float> column, written and read as Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    flat = pa.array(x.reshape(-1))
    features = pa.FixedSizeListArray.from_arrays(flat, x.shape[1]).cast(pa.list_(pa.float32()))
    path = os.path.join(tmp, "rows.parquet")
    pq.write_table(pa.table({"features": features}), path)
    df = spark.read.parquet(path).repartition(partitions).cache()
    df.count()
    return df


def best_time(fn, repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "inference.md"))
    args = parser.parse_args()

    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from pyspark.sql import SparkSession

    from cerebro_spark.keras import KerasModel

    load_before = os.getloadavg()[0]
    x, _ = make_rows(args.rows, seed=args.seed)
    model = estimator_gen_fn({"width": 64, "lr": 1e-3, "batch_size": 64}).getModel()
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.optimizer.build(model.trainable_variables)
    fitted = KerasModel.from_keras(model, feature_columns=["features"], inference_batch_size=args.batch_size)

    spark = (SparkSession.builder.master(args.master).appName("cerebro-bench-inference")
             .config("spark.ui.showConsoleProgress", "false").getOrCreate())  # fmt: skip
    spark.sparkContext.setLogLevel("ERROR")
    try:
        with tempfile.TemporaryDirectory(prefix="cerebro-bench-") as tmp:
            df = cached_frame(spark, x, tmp, args.partitions)
            out = fitted.transform(df)
            start = time.perf_counter()
            out.write.format("noop").mode("overwrite").save()  # cold: workers start, TF, model load
            cold = time.perf_counter() - start
            spark_s, spark_times = best_time(
                lambda: out.write.format("noop").mode("overwrite").save(), args.repeats
            )
            columns = out.columns[len(df.columns) :]
    finally:
        spark.stop()

    model.predict(x[: 4 * args.batch_size], batch_size=args.batch_size, verbose=0)  # warm-up: trace
    numpy_s, numpy_times = best_time(
        lambda: model.predict(x, batch_size=args.batch_size, verbose=0), args.repeats
    )
    ratio = (args.rows / spark_s) / (args.rows / numpy_s)
    lines = [
        f"# Inference benchmark ({args.rows} rows x 20 features, MLP 64, {args.master}, "
        f"{args.partitions} cached partitions, batch size {args.batch_size})",
        "",
        "| measure | value |",
        "|---|---|",
        f"| `KerasModel.transform` -> noop write, best of {args.repeats} | {spark_s:.2f} s "
        f"({args.rows / spark_s:,.0f} rows/s) |",
        f"| same, first pass (Python workers start, TensorFlow import, model load) | {cold:.2f} s |",
        f"| plain `model.predict` on the numpy rows, best of {args.repeats} | {numpy_s:.2f} s "
        f"({args.rows / numpy_s:,.0f} rows/s) |",
        f"| ratio transform / plain predict (goal >= 0.8) | {ratio:.2f} |",
        f"| output columns written | {', '.join(columns)} |",
        f"| all timed passes (transform; predict) | {', '.join(f'{t:.2f}' for t in spark_times)}; "
        f"{', '.join(f'{t:.2f}' for t in numpy_times)} s |",
        f"| machine: cores, 1-minute load average at start | {os.cpu_count()}, {load_before:.1f} |",
    ]
    table = "\n".join(lines) + "\n"
    print(table)
    Path(args.out).write_text(table)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
