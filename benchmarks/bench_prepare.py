"""Benchmark: cerebro_spark's data preparation against a plain ``df.write.parquet`` of the same rows.

For each size in ``--rows``, on one cached DataFrame (an array<float> ``features`` column of 20
values and a long ``label``, built with Spark's own random functions), in the same Spark session:

- **plain**: ``df.write.parquet(path)`` (one file per input partition, no checks, no balancing);
- **prepare**: :func:`cerebro_spark.data.prepare.prepare_data`, the entry point ``fit`` calls, with
  ``fit``'s arguments (``num_partitions`` = ``--workers``, validation 0.2, a seed, ``reuse=False`` so
  it really writes): one aggregate job (row counts per input partition and split, nulls, array
  lengths), then the files: up to ``COLLECT_MAX_BYTES`` of data (64 MiB, every size here by default)
  the driver collects the routed rows in one job and writes the 2P Parquet files itself;
- **prepare, executors' write**: the same with ``CEREBRO_COLLECT_MAX_BYTES=0``, the path of larger data:
  a write job whose first stage routes every row to its target partition (the balancing shuffle) and
  whose second stage writes the files through the Store from the executors.

Where the time goes: ``summarize`` (the aggregate job) and ``_write`` are timed by wrapping the module's
own functions for the run; the executors' write job's two stages are split with the Spark UI's REST API
(the shuffle-map stage's and the result stage's executor run time) when the UI is up. Also reported: the
bytes each approach wrote. Prints a table and writes ``benchmarks/results/prepare.md`` and ``prepare.png``.

Usage: ``python benchmarks/bench_prepare.py [--rows 20000 100000 500000] [--workers 2] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FEATURES = 20


def make_df(spark, rows: int, seed: int):
    from pyspark.sql import functions as F

    df = spark.range(rows, numPartitions=4).select(
        F.array(*[F.randn(seed + i).cast("float") for i in range(FEATURES)]).alias("features"),
        (F.rand(seed + 100) > 0.5).cast("long").alias("label"),
    )
    df = df.cache()
    df.count()
    return df


def folder_bytes(path: str) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*.parquet"))


def stage_times(spark, group: str) -> dict[str, float]:
    """Executor run time (s) of the write job's stages, by kind, from the Spark UI's REST API.

    With adaptive query execution Spark runs a shuffle's map stage as a job of its own, so the
    stages of every job of ``group`` are summed by kind: ``shuffle-map`` (the stages that write
    shuffle data: routing rows to their partition) and ``result`` (writing the Parquet files).
    The aggregate job (its jobs are named after ``_summary.py``) is left out: it is timed whole.
    """
    sc = spark.sparkContext
    url = sc.uiWebUrl
    if not url:
        return {}
    base = f"{url}/api/v1/applications/{sc.applicationId}"
    out: dict[str, float] = {}
    try:
        jobs = json.load(urllib.request.urlopen(f"{base}/jobs", timeout=10))  # noqa: S310 (the local UI)
        for job in jobs:
            if job.get("jobGroup") != group or "_summary.py" in job.get("name", ""):
                continue
            for stage_id in job["stageIds"]:
                for attempt in json.load(urllib.request.urlopen(f"{base}/stages/{stage_id}", timeout=10)):  # noqa: S310
                    if attempt.get("status") != "COMPLETE":
                        continue
                    kind = "shuffle-map" if attempt.get("shuffleWriteBytes", 0) > 0 else "result"
                    out[kind] = out.get(kind, 0.0) + attempt.get("executorRunTime", 0) / 1000.0
    except OSError:
        return {}
    return out


def measure(spark, rows: int, args, work: str) -> dict[str, float]:
    from cerebro_spark import Store
    from cerebro_spark.data import prepare

    df = make_df(spark, rows, args.seed)
    sc = spark.sparkContext

    plain_path = os.path.join(work, f"plain-{rows}")
    sc.setJobGroup(f"plain-{rows}", "plain write")
    t0 = time.perf_counter()
    df.write.parquet(plain_path)
    plain_s = time.perf_counter() - t0

    phases: dict[str, float] = {}
    originals = {name: getattr(prepare, name) for name in ("summarize", "_write")}

    def timed(name):
        def wrapper(*a, **k):
            start = time.perf_counter()
            try:
                return originals[name](*a, **k)
            finally:
                phases[name] = time.perf_counter() - start

        return wrapper

    def run(store_dir: str, group: str) -> tuple[float, object]:
        sc.setJobGroup(group, "cerebro_spark preparation")
        t0 = time.perf_counter()
        spec = prepare.prepare_data(
            df, Store.create(store_dir), feature_columns=["features"], label_columns=["label"],
            num_partitions=args.workers, validation=0.2, seed=args.seed, reuse=False,
        )  # fmt: skip
        return time.perf_counter() - t0, spec

    store_dir = os.path.join(work, f"store-{rows}")
    for name in originals:
        setattr(prepare, name, timed(name))
    try:
        prepare_s, spec = run(store_dir, f"prepare-{rows}")
    finally:
        for name, fn in originals.items():
            setattr(prepare, name, fn)
    previous = os.environ.get("CEREBRO_COLLECT_MAX_BYTES")
    os.environ["CEREBRO_COLLECT_MAX_BYTES"] = "0"  # the executors' write job, as for data above the limit
    try:
        executors_s, _ = run(os.path.join(work, f"store-exec-{rows}"), f"prepare-exec-{rows}")
    finally:
        if previous is None:
            del os.environ["CEREBRO_COLLECT_MAX_BYTES"]
        else:
            os.environ["CEREBRO_COLLECT_MAX_BYTES"] = previous
    sc.setJobGroup("bench-idle", "between measurements")
    stages = stage_times(spark, f"prepare-exec-{rows}")
    df.unpersist()
    return {
        "rows": rows,
        "plain_s": plain_s,
        "prepare_s": prepare_s,
        "executors_s": executors_s,
        "aggregate_s": phases.get("summarize", float("nan")),
        "write_job_s": phases.get("_write", float("nan")),
        "shuffle_run_s": stages.get("shuffle-map", float("nan")),
        "write_run_s": stages.get("result", float("nan")),
        "plain_bytes": folder_bytes(plain_path),
        "prepared_bytes": folder_bytes(os.path.join(store_dir, spec.root)),
        "partitions": [p.rows for p in spec.train] + [p.rows for p in spec.val],
    }


def table(results: list[dict], args) -> str:
    lines = [
        f"# Data preparation vs plain df.write.parquet ({args.master}, {args.workers} partitions + "
        f"{args.workers} validation, validation 0.2, {FEATURES} float features + label)",
        "",
        "prepare = `prepare_data` as `fit` calls it (every size here is below the 64 MiB under which the driver "
        "collects the rows and writes the files); aggregate = its summary job; write = the collect and the files "
        "(wall). executors' write = the same preparation with `CEREBRO_COLLECT_MAX_BYTES=0` (a balancing shuffle "
        "and a Python write job on the executors, the path of larger data); shuffle-map / result = that job's two "
        "stages' executor run time (summed over tasks, from the Spark UI's REST API).",
        "",
        "| rows | plain write (s) | prepare (s) | prepare / plain | aggregate job (s) | write (s) | other (s) "
        "| prepare, executors' write (s) | its shuffle-map stage run (s) | its result stage run (s) | plain MB "
        "| prepared MB | rows per file |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        other = r["prepare_s"] - r["aggregate_s"] - r["write_job_s"]
        lines.append(
            f"| {r['rows']:,} | {r['plain_s']:.2f} | {r['prepare_s']:.2f} | {r['prepare_s'] / r['plain_s']:.2f} | "
            f"{r['aggregate_s']:.2f} | {r['write_job_s']:.2f} | {other:.2f} | {r['executors_s']:.2f} | "
            f"{r['shuffle_run_s']:.2f} | {r['write_run_s']:.2f} | {r['plain_bytes'] / 1e6:.2f} | "
            f"{r['prepared_bytes'] / 1e6:.2f} | {r['partitions']} |"
        )
    return "\n".join(lines) + "\n"


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['rows']:,}" for r in results]
    x = range(len(results))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    w = 0.27
    ax.bar([i - w for i in x], [r["plain_s"] for r in results], width=w, label="plain df.write.parquet")
    agg = [r["aggregate_s"] for r in results]
    write = [r["write_job_s"] for r in results]
    other = [r["prepare_s"] - a - w_ for r, a, w_ in zip(results, agg, write, strict=True)]
    xs = list(x)
    ax.bar(xs, agg, width=w, label="prepare: aggregate job")
    ax.bar(xs, write, width=w, bottom=agg, label="prepare: collect + write (driver)")
    ax.bar(
        xs, other, width=w, bottom=[a + b for a, b in zip(agg, write, strict=True)], label="prepare: other"
    )
    ax.bar([i + w for i in x], [r["executors_s"] for r in results], width=w,
           label="prepare with the executors' write job")  # fmt: skip
    ax.set_xticks(list(x), labels)
    ax.set_xlabel("rows")
    ax.set_ylabel("wall time (s)")
    ax.set_title("Data preparation vs plain Parquet write")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--rows", type=int, nargs="+", default=[20_000, 100_000, 500_000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="sizes 5,000 and 20,000")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "prepare.md"))
    args = parser.parse_args()
    if args.quick:
        args.rows = [5_000, 20_000]

    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master(args.master).appName("cerebro-bench-prepare")
             .config("spark.ui.showConsoleProgress", "false").getOrCreate())  # fmt: skip
    spark.sparkContext.setLogLevel("ERROR")
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="cerebro-bench-prepare-") as work:
            measure(spark, 1_000, args, os.path.join(work, "warmup"))  # JIT and code paths warm for both
            for rows in args.rows:
                results.append(measure(spark, rows, args, work))
                r = results[-1]
                print(
                    f"{rows:>9,} rows: plain {r['plain_s']:.2f} s, prepare {r['prepare_s']:.2f} s", flush=True
                )
    finally:
        spark.stop()
    text = table(results, args)
    print(text)
    out = Path(args.out)
    out.write_text(text)
    plot(results, out.with_suffix(".png"))
    print(f"written to {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
