"""Benchmark: what a lost worker costs a search (units retried, extra wall time), on real executors.

One Spark session (``local-cluster[2,1,1024]`` by default: two executor JVMs), 2 workers, the fake
worker tasks of ``cerebro_spark.testing`` (no TensorFlow: each training unit takes ``--unit-s``
seconds), a grid of ``--models`` (even) models x ``--epochs`` epochs. The same search runs once without a
fault, then once per fault, each striking the first training unit of epoch 1 on partition 0:

- ``kill_python``: SIGKILL to the worker's Python process;
- ``kill_jvm``: SIGKILL to the executor JVM that runs it (the cluster starts a new executor);
- ``hang``: SIGSTOP to the worker's Python process (found by the heartbeat timeout, ``--timeout-s``).

Each run must complete with exact epoch counts (every model trains and is evaluated on every
partition exactly once per epoch, checked in the journal). Prints a Markdown table and writes it to
``--out`` (default ``benchmarks/results/faults.md``) and the raw figures to ``--json`` if given.

Usage: ``python benchmarks/bench_faults.py [--master local-cluster[2,1,1024]] [--faults kill_python,hang]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAULTS = ("kill_python", "kill_jvm", "hang")


def run_once(spark, store, run_id: str, fault: str | None, args, tmp: Path) -> dict:
    from cerebro_spark.backend.spark import SparkBackend
    from cerebro_spark.driver import MopDriver, RunSettings
    from cerebro_spark.search import GridSearchAlgorithm, hp_choice
    from cerebro_spark.store import layout
    from cerebro_spark.testing.fakes import fake_dataset, fake_tasks
    from cerebro_spark.training.model_spec import ModelSpec

    def factory(trial):
        return ModelSpec(run_id=run_id, model_id=trial.model_id, batch_size=8, params=dict(trial.params))

    rates = [1.0 + i for i in range(args.models // 2)]  # x 2 values of "fault" ("" is no fault)
    space = {"rate": hp_choice(rates), "unit_s": args.unit_s, "fault_marker": str(tmp / f"{run_id}.marker"),
             "fault": hp_choice([fault or "", None])}  # fmt: skip
    backend = SparkBackend(spark, num_workers=2, heartbeat_s=0.5, worker_timeout_s=args.timeout_s)
    driver = MopDriver(
        backend, store, fake_dataset(2), GridSearchAlgorithm(space, args.epochs), factory,
        RunSettings(run_id=run_id, metric="val_loss", mode="min", seed=1), tasks=fake_tasks(),
    )  # fmt: skip
    started = time.monotonic()
    result = driver.run()
    wall = time.monotonic() - started
    journal = [json.loads(line) for line in store.read_text(layout.journal_key(run_id)).splitlines()]
    counts = Counter((u["model_id"], u["epoch"], u["kind"], u["partition"]) for u in journal)
    models = len(result.models)
    exact = (
        len(counts) == models * args.epochs * 2 * 2
        and set(counts.values()) == {1}
        and all(m.status == "completed" and m.epochs == args.epochs for m in result.models.values())
    )
    return {
        "fault": fault or "none",
        "struck": fault is None or (tmp / f"{run_id}.marker").exists(),
        "exact_epochs": exact,
        "losses": len(driver.worker_losses),
        "units_retried": sum(len(loss["units_put_back"]) for loss in driver.worker_losses),
        "reasons": [loss["reason"] for loss in driver.worker_losses],
        "wall_s": round(wall, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--master", default="local-cluster[2,1,1024]")
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument("--models", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--unit-s", type=float, default=0.5)
    parser.add_argument("--timeout-s", type=float, default=5.0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "faults.md"))
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ["PYSPARK_PYTHON"] = sys.executable

    import pyspark
    from pyspark.sql import SparkSession

    from cerebro_spark.store.base import Store

    work = Path(pyspark.__file__).parent / "work"
    existing = set(work.iterdir()) if work.exists() else set()
    spark = (
        SparkSession.builder.master(args.master).appName("cerebro-bench-faults")
        .config("spark.ui.enabled", "false").config("spark.executor.memory", "1g").getOrCreate()
    )  # fmt: skip
    spark.sparkContext.setLogLevel("OFF")
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="cerebro-faults-") as tmp:
            store = Store.create(str(Path(tmp) / "store"))
            run_once(spark, store, "warmup", None, args, Path(tmp))  # Python workers started once
            for fault in [None, *[f for f in args.faults.split(",") if f]]:
                rows.append(run_once(spark, store, f"run-{fault or 'none'}", fault, args, Path(tmp)))
                print(json.dumps(rows[-1]), flush=True)
    finally:
        spark.stop()
        if work.exists():  # local-cluster leaves executor logs inside the pyspark package
            for path in set(work.iterdir()) - existing:
                shutil.rmtree(path, ignore_errors=True)
    base = rows[0]["wall_s"]
    lines = [
        f"# Faults: what a lost worker costs ({args.master}, 2 workers, {args.models} models x {args.epochs} "
        f"epochs, {args.unit_s:g} s per training unit, worker_timeout_s={args.timeout_s:g})",
        "",
        "| fault | completed, exact epochs | relaunches | units retried | search wall (s) | extra wall (s) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        extra = r["wall_s"] - base
        lines.append(
            f"| {r['fault']} | {'yes' if r['exact_epochs'] and r['struck'] else 'NO'} | {r['losses']} | "
            f"{r['units_retried']} | {r['wall_s']:.1f} | {extra:+.1f} |"
        )
    table = "\n".join(lines) + "\n"
    print(table)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(table)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
