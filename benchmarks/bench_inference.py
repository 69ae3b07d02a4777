"""Benchmark: rows per second of ``KerasModel.transform`` against plain ``model.predict`` on the same rows.

Workload: the quickstart MLP (20 features -> 64 -> 1, sigmoid: a binary classifier, so ``transform``
writes ``rawPrediction``, ``probability`` and ``prediction``) on 200,000 synthetic rows held in Spark's
memory cache (4 partitions), on ``local[2]``. ``transform`` is forced to compute every output column by
writing to Spark's ``noop`` format. The baseline, in the same script: ``model.predict`` on the same rows
as one numpy array in this process, with the same batch size.

Both are warmed up first. The first pass of ``transform`` starts the Python workers, imports TensorFlow
and loads the model; then ``--warmup`` more passes let the JVM's just-in-time compiler reach its steady
state. Most of ``transform``'s CPU time is the JVM's (rows to Arrow and back), and on this workload a
pass takes about 1.5x as long in the first ten passes as after thirty: the median of those first ten
passes is printed too, as the figure for a short job on a fresh JVM. Then ``--repeats`` timed passes of
each, interleaved (a pass of ``transform``, then one of ``predict``) so that both see the same state of
the machine; the ratio compares the medians (the best passes are printed too).

Prints and writes ``benchmarks/results/inference.md``; the goal is a ratio >= 0.8.

Usage: ``python benchmarks/bench_inference.py [--master local[2]] [--rows 200000] [--batch-size 1024]``.
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


def timed(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                        help="a Spark setting for the session (repeatable)")  # fmt: skip
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

    builder = (SparkSession.builder.master(args.master).appName("cerebro-bench-inference")
               .config("spark.ui.showConsoleProgress", "false"))  # fmt: skip
    for setting in args.conf:
        key, _, value = setting.partition("=")
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    try:
        with tempfile.TemporaryDirectory(prefix="cerebro-bench-") as tmp:
            df = cached_frame(spark, x, tmp, args.partitions)
            out = fitted.transform(df)

            def transform() -> None:
                out.write.format("noop").mode("overwrite").save()

            def predict() -> None:
                model.predict(x, batch_size=args.batch_size, verbose=0)

            (cold,) = timed(transform, 1)  # Python workers start, TensorFlow import, model load
            early_times = timed(transform, args.warmup)
            timed(predict, 1 + args.warmup)
            spark_times, numpy_times = [], []
            for _ in range(args.repeats):  # interleaved: both see the same state of the machine
                spark_times += timed(transform, 1)
                numpy_times += timed(predict, 1)
            columns = out.columns[len(df.columns) :]
    finally:
        spark.stop()
    spark_s, numpy_s = statistics.median(spark_times), statistics.median(numpy_times)
    ratio = numpy_s / spark_s  # rows per second of transform / rows per second of predict
    best_ratio = min(numpy_times) / min(spark_times)
    early_s = statistics.median(early_times[:10])
    lines = [
        f"# Inference benchmark ({args.rows} rows x 20 features, MLP 64, {args.master}, "
        f"{args.partitions} cached partitions, batch size {args.batch_size})",
        "",
        "| measure | value |",
        "|---|---|",
        f"| `KerasModel.transform` -> noop write, median of {args.repeats} | {spark_s:.3f} s "
        f"({args.rows / spark_s:,.0f} rows/s) |",
        f"| same, first pass (Python workers start, TensorFlow import, model load) | {cold:.2f} s |",
        f"| plain `model.predict` on the numpy rows, median of {args.repeats} | {numpy_s:.3f} s "
        f"({args.rows / numpy_s:,.0f} rows/s) |",
        f"| **ratio transform / plain predict, medians (goal >= 0.8)** | **{ratio:.2f}** |",
        f"| same ratio on the best passes | {best_ratio:.2f} |",
        f"| warm-up passes before timing (each) | {args.warmup} |",
        f"| `transform`, median of the first {min(10, len(early_times))} warm-up passes (JVM not yet "
        f"compiled) | {early_s:.3f} s, ratio {numpy_s / early_s:.2f} |",
        f"| output columns written | {', '.join(columns)} |",
        f"| all timed passes (transform; predict) | {', '.join(f'{t:.2f}' for t in spark_times)}; "
        f"{', '.join(f'{t:.2f}' for t in numpy_times)} s |",
        f"| machine: cores, 1-minute load average at start | {os.cpu_count()}, {load_before:.1f} |",
        f"| Spark settings passed (`--conf`) | {', '.join(args.conf) or 'none'} |",
    ]
    table = "\n".join(lines) + "\n"
    print(table)
    Path(args.out).write_text(table)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
