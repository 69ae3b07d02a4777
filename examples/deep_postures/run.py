"""DeepPostures model selection with Model Hopper Parallelism: the Cerebro papers' workload.

Classifies sitting vs not sitting from hip-worn accelerometer data with a CNN-BiLSTM (``model.py``)
over the grid learning rate {1e-3, 1e-4} x L2 {1e-3, 1e-4} x sequence {7, 9} minutes x amplification
a {2, 4} = 16 configurations, and prints the leaderboard.

The sequence length is a property of the data (42 or 54 windows of 10 s per row), so each length is
its own DataFrame and its own GridSearch over the 8 other configurations, on the same subjects, the
same held-out validation subjects and the same Store; the two leaderboards are merged.

``--tiny`` (what ``make example`` runs) writes synthetic files for 8 subjects x 3 hours, scales the
amplification down to a {1/16, 1/8} and trains 3 epochs on ``local[2]``: about a minute on 2 cores.
Each search writes its HTML report (leaderboard, learning curves, schedule) into the Store.
Without ``--tiny``, point ``--data`` at DeepPostures pre-processed files (``<subject>/<YYYY-MM-DD>.h5``)
on a folder every executor can reach; see ``examples/deep_postures/README.md`` for spark-submit.

``--engine standalone`` runs it without Spark, as cerebro-standalone did: the driver reads the files and
prepares them into the Store, and ``cerebro-worker`` processes (started by hand on each machine, or
``--start-workers N`` of them here) train; the Store must be a folder they all reach.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the examples folder: `deep_postures` is a package in it

from deep_postures.generate import generate  # noqa: E402
from deep_postures.loader import list_day_files, load_sequences, load_table, windows_for  # noqa: E402
from deep_postures.model import estimator_gen_fn  # noqa: E402

SETTINGS = {
    "tiny": {"amps": [0.0625, 0.125], "epochs": 3, "batch_size": 8, "subjects": 8, "days": 1, "hours": 3.0},
    "full": {"amps": [2.0, 4.0], "epochs": 10, "batch_size": 32, "subjects": 32, "days": 2, "hours": 14.0},
}
COLUMNS = ["param_minutes", "model_id", "param_amp", "param_lr", "param_l2", "best_epoch", "val_accuracy",
           "val_loss", "accuracy", "loss"]  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="the small setting of `make example`")
    parser.add_argument("--data", help="DeepPostures pre-processed files; default: generate synthetic ones")
    parser.add_argument("--subjects", type=int, help="synthetic subjects (tiny 8, full 32)")
    parser.add_argument("--days", type=int, help="synthetic days per subject (tiny 1, full 2)")
    parser.add_argument("--hours", type=float, help="synthetic hours per day (tiny 3, full 14)")
    parser.add_argument("--val-fraction", type=float, default=0.25, help="share of subjects held out")
    parser.add_argument("--minutes", type=float, nargs="+", default=[7.0, 9.0], help="sequence lengths")
    parser.add_argument(
        "--amps", type=float, nargs="+", help="amplification factors a (tiny 1/16 1/8, full 2 4)"
    )
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-3, 1e-4])
    parser.add_argument("--l2s", type=float, nargs="+", default=[1e-3, 1e-4])
    parser.add_argument("--epochs", type=int, help="epochs per configuration (tiny 3, full 10)")
    parser.add_argument("--batch-size", type=int, help="sequences per step (tiny 8, full 32)")
    parser.add_argument("--workers", type=int, help="MOP workers; default: the master's parallelism")
    parser.add_argument("--master", help="Spark master; default local[2] with --tiny, else spark-submit's")
    parser.add_argument("--store", default=str(HERE.parents[1] / "store"), help="the Store's root or URL")
    parser.add_argument("--read-on-driver", action="store_true", help="read the HDF5 files on the driver")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--engine", choices=["spark", "standalone"], default="spark",
                        help="spark (default) or standalone: cerebro-worker processes, no Spark")  # fmt: skip
    parser.add_argument("--port", type=int, default=47470, help="standalone: the port workers dial")
    parser.add_argument(
        "--bind-address", default="127.0.0.1", help="standalone: an address the workers reach"
    )
    parser.add_argument(
        "--secret-file", default="~/.cerebro_spark/worker-secret", help="standalone: the secret"
    )
    parser.add_argument(
        "--start-workers", type=int, default=0, help="standalone: start this many workers here"
    )
    args = parser.parse_args(argv)
    setting = SETTINGS["tiny" if args.tiny else "full"]
    for name in ("amps", "epochs", "batch_size", "subjects", "days", "hours"):
        if getattr(args, name) is None:
            setattr(args, name, setting[name])
    if args.tiny and args.master is None:
        args.master = "local[2]"
    return args


def synthetic_data(args: argparse.Namespace) -> str:
    """Write the synthetic files once, in a folder named by their parameters (so the prepared data of
    another set of parameters is never reused for them)."""
    if "://" in args.store and not args.store.startswith("file://"):
        raise SystemExit(
            f"Synthetic data is written to a local folder: give --data, or a local --store. "
            f"Received: --store {args.store}."
        )
    name = f"synthetic-{args.subjects}s-{args.days}d-{args.hours:g}h-seed{args.seed}"
    root = Path(args.store.removeprefix("file://")) / "deep_postures" / name
    if not (root / "_SUCCESS").exists():
        generate(root, args.subjects, args.days, args.hours, args.seed)
        (root / "_SUCCESS").touch()
    return str(root)


def held_out_subjects(root: str, fraction: float, seed: int) -> list[str]:
    """A seeded choice of ``fraction`` of the subjects (at least one) for validation."""
    import numpy as np

    subjects = sorted({url.rstrip("/").split("/")[-2] for url in list_day_files(root)})
    count = min(len(subjects) - 1, max(1, round(fraction * len(subjects))))
    if count < 1:
        raise SystemExit(f"Need at least 2 subjects to hold some out for validation; found {subjects}.")
    return sorted(np.random.default_rng(seed).choice(subjects, count, replace=False).tolist())


def table_and_stats(
    root: str, seq_len: int, val_subjects: list[str]
) -> tuple[Any, dict[bool, tuple[int, float]]]:
    """Without Spark: the sequences as an Arrow table with the ``is_val`` column, and per split the
    number of sequences and the share of windows labelled not sitting."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    table = load_table(root, seq_len)
    is_val = pc.is_in(table.column("subject"), value_set=pa.array(val_subjects))
    table = table.append_column("is_val", is_val)
    labels = (
        np.stack(table.column("labels").to_numpy(zero_copy_only=False))
        if table.num_rows
        else np.zeros((0, 1))
    )
    flags = is_val.to_numpy(zero_copy_only=False)
    stats = {
        split: (
            int((flags == split).sum()),
            float(labels[flags == split].mean()) if (flags == split).any() else 0.0,
        )
        for split in (False, True)
    }
    return table, stats


def search_one_length(spark, args: argparse.Namespace, root: str, val_subjects: list[str], minutes: float):
    """GridSearch of every (lr, l2, a) on sequences of ``minutes``; returns (leaderboard, result, stats).
    ``spark`` None: the standalone engine (no Spark)."""
    from cerebro_spark import SparkBackend, StandaloneBackend, Store

    if spark is not None:
        from pyspark.sql import functions as F
    from cerebro_spark.tune import GridSearch, hp_choice

    seq_len = windows_for(minutes)
    if spark is None:  # standalone: the driver reads the files, cerebro-worker processes train
        df, stats = table_and_stats(root, seq_len, val_subjects)
        backend: Any = StandaloneBackend(
            args.workers or 2, bind_address=args.bind_address, port=args.port, secret_file=args.secret_file
        )
    else:
        df = load_sequences(spark, root, seq_len, local=args.read_on_driver)
        df = df.withColumn("is_val", F.col("subject").isin(val_subjects))
        rows = (
            df.groupBy("is_val")
            .agg(
                F.count("*").alias("sequences"),
                F.avg(F.aggregate("labels", F.lit(0.0), lambda s, x: s + x) / seq_len),
            )
            .collect()
        )
        stats = {row["is_val"]: (row[1], row[2]) for row in rows}
        backend = SparkBackend(spark, num_workers=args.workers)
    search = GridSearch(
        backend=backend,
        store=Store.create(args.store),
        estimator_gen_fn=estimator_gen_fn,
        search_space={"lr": hp_choice(args.lrs), "l2": hp_choice(args.l2s), "amp": hp_choice(args.amps),
                      "minutes": minutes, "seq_len": seq_len, "batch_size": args.batch_size},
        num_epochs=args.epochs, evaluation_metric="val_accuracy", validation="is_val",
        feature_columns=["features"], label_columns=["labels"], seed=args.seed,
    )  # fmt: skip
    result = search.fit(df)
    return result.leaderboard(), result, stats


def write_report(result: Any, store: str) -> str:
    """The search's HTML report, beside its run in a local Store (for a remote Store, here)."""
    local = store.removeprefix("file://")
    if "://" in local:  # the report is a local file
        return str(result.report(str(Path.cwd() / f"report-{result.run_id}.html")))
    return str(result.report(str(Path(local) / "runs" / result.run_id / "report.html")))


def run_selection(spark, args: argparse.Namespace) -> tuple[Any, list[dict[str, Any]]]:
    """Both searches; returns the merged leaderboard (best first) and one summary dict per search."""
    import pandas as pd

    root = args.data or synthetic_data(args)
    val_subjects = held_out_subjects(root, args.val_fraction, args.seed)
    boards, runs = [], []
    for minutes in args.minutes:
        board, result, stats = search_one_length(spark, args, root, val_subjects, minutes)
        boards.append(board)
        val_not_sitting = stats.get(True, (0, 0.0))[1] or 0.0
        runs.append({
            "minutes": minutes, "root": root, "val_subjects": val_subjects,
            "train_sequences": stats.get(False, (0,))[0], "val_sequences": stats.get(True, (0,))[0],
            "val_majority": max(val_not_sitting, 1 - val_not_sitting), "result": result,
            "report": write_report(result, args.store),
        })  # fmt: skip
    merged = pd.concat(boards, ignore_index=True)
    merged = merged.sort_values("val_accuracy", ascending=False, kind="stable").reset_index(drop=True)
    return merged, runs


def start_local_workers(args: argparse.Namespace) -> list[Any]:
    """``--start-workers N``: N ``cerebro-worker`` processes on this machine (a one-machine try)."""
    import subprocess

    from cerebro_spark.backend.standalone import read_secret

    read_secret(args.secret_file, create=True)
    command = [sys.executable, "-m", "cerebro_spark.backend.standalone", "--driver", f"127.0.0.1:{args.port}",
               "--secret-file", args.secret_file, "--cores", "1", "--log-level", "WARNING"]  # fmt: skip
    return [subprocess.Popen(command) for _ in range(args.start_workers)]


def report(merged: Any, runs: list[dict[str, Any]], args: argparse.Namespace, started: float) -> None:
    print(
        f"\nDeepPostures data: {runs[0]['root']} (validation subjects: {', '.join(runs[0]['val_subjects'])})"
    )
    for r in runs:
        run = r["result"].result
        run_dir = f"{args.store}/runs/{r['result'].run_id}"
        print(
            f"{r['minutes']:g} min ({windows_for(r['minutes'])} windows): {r['train_sequences']} training and "
            f"{r['val_sequences']} validation sequences, validation majority class {r['val_majority']:.3f}; "
            f"search {run.wall_seconds:.0f}s, utilization {run.utilization():.2f}\n"
            f"  run {run_dir}/ (search.json, journal.jsonl, models/)\n"
            f"  report {r['report']}\n"
            f"  TensorBoard: tensorboard --logdir {run_dir}/models"
        )
    print(f"\nLeaderboard of {len(merged)} configurations (best validation accuracy first):")
    print(
        merged[[c for c in COLUMNS if c in merged]].to_string(index=False, float_format=lambda v: f"{v:.4g}")
    )
    print(f"\nTotal wall time {time.perf_counter() - started:.0f}s")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    started = time.perf_counter()
    if args.engine == "standalone":
        workers = start_local_workers(args) if args.start_workers else []
        args.workers = args.workers or len(workers) or 2
        try:
            merged, runs = run_selection(None, args)
            report(merged, runs, args, started)
        finally:
            for worker in workers:
                worker.terminate()
        return
    if args.master and args.master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # the loader's tasks need h5py

    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("cerebro-spark-deep-postures")
    if args.master:
        builder = builder.master(args.master)
    builder = builder.config("spark.ui.showConsoleProgress", "false")
    if args.master and args.master.startswith("local"):  # this process starts the JVM: it logs errors only
        log4j = HERE.parent / "log4j2.properties"
        builder = builder.config(
            "spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={log4j.as_uri()}"
        )
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    try:
        merged, runs = run_selection(spark, args)
        report(merged, runs, args, started)
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
