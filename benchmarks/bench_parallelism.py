"""Benchmark: MOP (cerebro_spark) against task parallelism (what SparkTrials does) and sequential training.

Workload: ``N = 8`` Keras MLPs of heterogeneous sizes (two hidden layers of width 8, 32, 128, 512, x
learning rates 3e-3 and 1e-3; Adam, binary cross-entropy, batch 64) x ``--epochs`` epochs on
``--rows`` synthetic rows x 20 features, validation 20%, the same seed everywhere. Three approaches,
in one script, on the same Spark session and the same training and validation rows:

(a) **MOP**: ``GridSearch`` with ``SparkBackend(num_workers=P)`` on ``local[P]``; each worker holds
    1/P of the data (the prepared Parquet partitions) and the models hop between workers.
(b) **Task parallelism** as SparkTrials does it: one Spark task per configuration (a job with N
    tasks on the same P slots: P trials at a time), each task building its model and training it
    for all epochs on the *full* data. What is modelled for the data: each of the P workers holds
    its own full copy of the training and validation rows as Parquet (as a SparkTrials objective
    reading from node-local storage, or the Cerebro paper's "full data copy on every node"); the
    driver writes the P copies from the prepared rows (timed as staging) and every trial reads its
    worker's copy whole (task ``i`` reads copy ``i mod P``). TensorFlow is limited to one thread
    per task, as MOP's workers are (one core per Spark task).
(c) **Sequential**: one model at a time in a fresh process on the driver, TensorFlow on all cores,
    reading one full copy of the data.

Reported: wall times (end to end, and "training wall": MOP's search from workers up to the last
unit; task parallelism's from the first trial with TensorFlow imported to the last trial's end;
sequential's after the TensorFlow import), throughput in model-epochs per second of training wall,
Parquet bytes written and read by each approach (MOP also writes a checkpoint per sub-epoch: shown
apart), peak memory per worker (the peak resident set size of each Spark Python worker process,
sampled every 0.5 s from ``/proc`` during the approach; for (c) the process's exact ``ru_maxrss``),
and the final validation accuracy of every configuration, with the largest difference between MOP
and sequential training. Prints a table and writes ``benchmarks/results/parallelism.md`` and
``parallelism.png``.

Usage: ``python benchmarks/bench_parallelism.py [--rows 20000] [--epochs 3] [--workers 2] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
sys.path.insert(0, str(ROOT))

WIDTHS = [8, 32, 128, 512]
RATES = [3e-3, 1e-3]
BATCH = 64
METRIC = "val_accuracy"


# ---- the model, the same for all three approaches ---------------------------------------------------


def build_model(width: int, lr: float):
    import keras

    model = keras.Sequential([
        keras.Input((20,)),
        keras.layers.Dense(width, activation="relu"),
        keras.layers.Dense(width, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ])  # fmt: skip
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="binary_crossentropy", metrics=["accuracy"])
    return model


def estimator_gen_fn(params):
    from cerebro_spark.keras import KerasEstimator

    model = build_model(params["width"], params["lr"])
    return KerasEstimator(
        model=model, optimizer=model.optimizer, loss="binary_crossentropy", metrics=["accuracy"],
        batch_size=params["batch_size"],
    )  # fmt: skip


def read_copy(path: str):
    """The rows of one full copy (a Parquet file): features (n, 20) float32 and labels (n,) int64."""
    import numpy as np
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    features = table.column("features").combine_chunks()
    x = np.asarray(features.flatten(), dtype=np.float32).reshape(len(table), -1)
    y = np.asarray(table.column("label"), dtype=np.int64)
    return x, y


def train_whole(config: dict, train_path: str, val_path: str, epochs: int, seed: int, threads: int) -> dict:
    """Train one configuration for all epochs on a full copy of the data; used by (b) and (c)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import resource

    import tensorflow as tf

    try:
        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already initialised in this (reused) process
        pass
    import keras

    ready = time.time()
    x, y = read_copy(train_path)
    xv, yv = read_copy(val_path)
    keras.utils.set_random_seed(seed)
    model = build_model(config["width"], config["lr"])
    model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=True, verbose=0)
    metrics = model.evaluate(xv, yv, batch_size=1024, verbose=0, return_dict=True)
    return {
        "config": config,
        "val_accuracy": float(metrics["accuracy"]),
        "ready": ready,
        "end": time.time(),
        "read_bytes": os.path.getsize(train_path) + os.path.getsize(val_path),
        "pid": os.getpid(),
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


# ---- peak memory of the Spark Python workers ---------------------------------------------------------


class RssSampler:
    """Samples the resident set size of every process under the Spark JVM (the Python daemon's workers)."""

    def __init__(self, root_pid: int, interval: float = 0.5) -> None:
        self.root_pid, self.interval = root_pid, interval
        self.peak: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _descendants(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
        found, todo = [], [self.root_pid]
        while todo:
            for child in children.get(todo.pop(), []):
                found.append(child)
                todo.append(child)
        return found

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in self._descendants():
                try:
                    with open(f"/proc/{pid}/status") as f:
                        status = f.read()
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        if b"python" not in f.read():
                            continue
                except OSError:
                    continue
                for line in status.splitlines():
                    if line.startswith("VmRSS:"):
                        mb = int(line.split()[1]) / 1024
                        self.peak[pid] = max(self.peak.get(pid, 0.0), mb)
            self._stop.wait(self.interval)

    def top(self, n: int) -> list[float]:
        """The ``n`` largest per-process peaks (MB): the busy workers' (the daemon itself is small)."""
        return sorted(self.peak.values(), reverse=True)[:n]


# ---- the three approaches ----------------------------------------------------------------------------


def parquet_bytes(folder: str, pattern: str = "*.parquet") -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob(pattern))


def run_mop(spark, df, args, store_dir: str, jvm_pid: int) -> dict:
    from cerebro_spark import SparkBackend, Store
    from cerebro_spark.tune import GridSearch, hp_choice

    search = GridSearch(
        backend=SparkBackend(spark, num_workers=args.workers), store=Store.create(store_dir),
        estimator_gen_fn=estimator_gen_fn,
        search_space={"width": hp_choice(WIDTHS), "lr": hp_choice(RATES), "batch_size": BATCH},
        num_epochs=args.epochs, evaluation_metric=METRIC, validation=0.2,
        feature_columns=["features"], label_columns=["label"], seed=args.seed, verbose=0,
    )  # fmt: skip
    with RssSampler(jvm_pid) as rss:
        start = time.perf_counter()
        result = search.fit(df)
        wall = time.perf_counter() - start
    run = result.result
    data = parquet_bytes(os.path.join(store_dir, "data"))
    accuracy = {}
    for record in run.models.values():
        key = (record.params["width"], record.params["lr"])
        accuracy[key] = record.history[-1].metrics[METRIC]
    return {
        "name": f"MOP (cerebro_spark, P={args.workers})",
        "wall": wall,
        "train_wall": run.wall_seconds,
        "written": data,
        "read": data,  # each worker reads its training and validation partition once and keeps it in memory
        "checkpoints": parquet_bytes(
            os.path.join(store_dir, "runs"), "ckpt-*"
        ),  # those kept: latest and best
        "memory": rss.top(args.workers),
        "accuracy": accuracy,
    }


def stage_copies(store_dir: str, copies_dir: str, copies: int) -> tuple[list[tuple[str, str]], float]:
    """Write ``copies`` full copies (train, val) of the rows MOP prepared; returns their paths and the time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from cerebro_spark import Store
    from cerebro_spark.data.prepare import load_prepared

    store = Store.create(store_dir)
    [root] = [f"data/{p.name}" for p in Path(store_dir, "data").iterdir() if p.is_dir()]
    spec = load_prepared(store, root)
    start = time.perf_counter()
    tables = {
        split: pa.concat_tables([pq.read_table(store.local_path(p.key)) for p in parts])
        for split, parts in (("train", spec.train), ("val", spec.val))
    }
    paths = []
    for i in range(copies):
        pair = []
        for split, table in tables.items():
            path = os.path.join(copies_dir, f"copy{i}-{split}.parquet")
            pq.write_table(table, path)
            pair.append(path)
        paths.append((pair[0], pair[1]))
    return paths, time.perf_counter() - start


def run_task_parallel(spark, args, store_dir: str, work: str, jvm_pid: int) -> dict:
    copies_dir = os.path.join(work, "task-parallel")
    os.makedirs(copies_dir)
    copies, staging = stage_copies(store_dir, copies_dir, args.workers)
    configs = [{"width": w, "lr": lr} for w in WIDTHS for lr in RATES]
    jobs = [(i, c, *copies[i % args.workers]) for i, c in enumerate(configs)]
    epochs, seed = args.epochs, args.seed

    def trial(rows):
        for i, config, train_path, val_path in rows:
            yield train_whole(config, train_path, val_path, epochs, seed + i, threads=1)

    sc = spark.sparkContext
    sc.setJobDescription("task parallelism: one task per configuration")
    with RssSampler(jvm_pid) as rss:
        start = time.perf_counter()
        results = sc.parallelize(jobs, len(jobs)).mapPartitions(trial).collect()
        job_wall = time.perf_counter() - start
    sc.setJobDescription(None)
    return {
        "name": f"task parallelism (SparkTrials-like, {args.workers} slots)",
        "wall": staging + job_wall,
        "train_wall": max(r["end"] for r in results) - min(r["ready"] for r in results),
        "written": parquet_bytes(copies_dir),
        "read": sum(r["read_bytes"] for r in results),
        "checkpoints": 0,
        "memory": rss.top(args.workers),
        "accuracy": {(r["config"]["width"], r["config"]["lr"]): r["val_accuracy"] for r in results},
        "staging": staging,
    }


def run_sequential(args, store_dir: str, work: str) -> dict:
    copies_dir = os.path.join(work, "sequential")
    os.makedirs(copies_dir)
    [(train_path, val_path)], staging = stage_copies(store_dir, copies_dir, 1)
    request = {"train": train_path, "val": val_path, "epochs": args.epochs, "seed": args.seed}
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, __file__, "--sequential-worker", json.dumps(request)],
        check=True, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    wall = time.perf_counter() - start
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return {
        "name": "sequential (one model at a time, all cores)",
        "wall": staging + wall,
        "train_wall": result["train_wall"],
        "written": parquet_bytes(copies_dir),
        "read": sum(r["read_bytes"] for r in result["models"]),
        "checkpoints": 0,
        "memory": [result["maxrss_mb"]],
        "accuracy": {(r["config"]["width"], r["config"]["lr"]): r["val_accuracy"] for r in result["models"]},
        "staging": staging,
    }


def sequential_worker(request: dict) -> None:
    """The body of (c), in its own process: prints one JSON line."""
    import resource

    import tensorflow  # noqa: F401  (imported before the clock starts, as (b)'s trials' import is excluded)

    start = time.perf_counter()
    configs = [{"width": w, "lr": lr} for w in WIDTHS for lr in RATES]
    models = [
        train_whole(c, request["train"], request["val"], request["epochs"], request["seed"] + i, threads=0)
        for i, c in enumerate(configs)
    ]
    print(json.dumps({
        "models": models, "train_wall": time.perf_counter() - start,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))  # fmt: skip


# ---- report ------------------------------------------------------------------------------------------


def report(rows: list[dict], args) -> str:
    mop, task, seq = rows
    model_epochs = len(WIDTHS) * len(RATES) * args.epochs
    lines = [
        f"# MOP vs task parallelism vs sequential ({len(WIDTHS) * len(RATES)} models x {args.epochs} epochs, "
        f"{args.rows:,} rows, {args.workers} workers, {args.master}, seed {args.seed})",
        "",
        "| approach | end-to-end wall (s) | training wall (s) | model-epochs / s | Parquet written (MB) "
        "| Parquet read (MB) | checkpoints written (MB) | peak RSS per worker (MB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['wall']:.1f} | {r['train_wall']:.1f} | {model_epochs / r['train_wall']:.2f} | "
            f"{r['written'] / 1e6:.2f} | {r['read'] / 1e6:.2f} | {r['checkpoints'] / 1e6:.2f} | "
            f"{', '.join(f'{m:.0f}' for m in r['memory'])} |"
        )
    diffs = {k: abs(mop["accuracy"][k] - seq["accuracy"][k]) for k in seq["accuracy"]}
    lines += [
        "",
        "| width | lr | MOP val_accuracy | task-parallel val_accuracy | sequential val_accuracy |",
        "|---|---|---|---|---|",
    ]
    for key in sorted(seq["accuracy"]):
        lines.append(
            f"| {key[0]} | {key[1]:g} | {mop['accuracy'][key]:.4f} | {task['accuracy'][key]:.4f} | "
            f"{seq['accuracy'][key]:.4f} |"
        )
    vs_task = task["train_wall"] / mop["train_wall"]
    vs_seq = seq["train_wall"] / mop["train_wall"]
    lines += [
        "",
        f"- MOP throughput / task parallelism's: {vs_task:.2f}x (goal >= 0.95x); end to end {task['wall'] / mop['wall']:.2f}x",
        f"- MOP data footprint / task parallelism's: {mop['written'] / task['written']:.3f} (goal 1/P = "
        f"{1 / args.workers:.3f}); Parquet read {mop['read'] / task['read']:.3f}",
        f"- MOP speed-up over sequential: {vs_seq:.2f}x (goal >= 1.8x with 2 workers); end to end "
        f"{seq['wall'] / mop['wall']:.2f}x",
        f"- largest |MOP - sequential| final val_accuracy: {max(diffs.values()):.4f} "
        f"(mean {sum(diffs.values()) / len(diffs):.4f})",
        f"- staging of the full copies (driver, pyarrow): task parallelism {task['staging']:.2f} s, "
        f"sequential {seq['staging']:.2f} s (in their end-to-end walls); MOP's end-to-end wall is its whole `fit`",
    ]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], args, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["MOP", "task parallel", "sequential"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    axes[0].bar(names, [r["train_wall"] for r in rows], label="training wall")
    axes[0].bar(names, [r["wall"] - r["train_wall"] for r in rows], bottom=[r["train_wall"] for r in rows],
                label="rest of end-to-end")  # fmt: skip
    axes[0].set_ylabel("seconds")
    axes[0].set_title("wall time")
    axes[0].legend()
    axes[1].bar(names, [r["written"] / 1e6 for r in rows], label="Parquet written")
    axes[1].bar(
        names,
        [r["read"] / 1e6 for r in rows],
        bottom=[r["written"] / 1e6 for r in rows],
        label="Parquet read",
    )
    axes[1].set_ylabel("MB")
    axes[1].set_title("data bytes")
    axes[1].legend()
    keys = sorted(rows[2]["accuracy"])
    for r, name in zip(rows, names, strict=True):
        axes[2].plot(range(len(keys)), [r["accuracy"][k] for k in keys], marker="o", label=name)
    axes[2].set_xticks(range(len(keys)), [f"w{w}\nlr{lr:g}" for w, lr in keys], fontsize=7)
    axes[2].set_title("final val_accuracy per configuration")
    axes[2].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--master", default=None, help="default local[P]")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="4,000 rows, 1 epoch: a smoke run")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "parallelism.md"))
    parser.add_argument("--sequential-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sequential_worker:
        sequential_worker(json.loads(args.sequential_worker))
        return
    if args.quick:
        args.rows, args.epochs = 4_000, 1
    args.master = args.master or f"local[{args.workers}]"

    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Trials are shipped by value (cloudpickle), the package by PYTHONPATH: workers import this checkout.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    from pyspark.sql import SparkSession
    from synthetic import make_dataframe

    spark = (SparkSession.builder.master(args.master).appName("cerebro-bench-parallelism")
             .config("spark.ui.showConsoleProgress", "false").getOrCreate())  # fmt: skip
    spark.sparkContext.setLogLevel("ERROR")
    jvm_pid = spark.sparkContext._gateway.proc.pid
    try:
        with tempfile.TemporaryDirectory(prefix="cerebro-bench-par-") as work:
            store_dir = os.path.join(work, "store")
            df = make_dataframe(spark, args.rows, seed=args.seed).cache()
            df.count()
            rows = [run_mop(spark, df, args, store_dir, jvm_pid)]
            print(f"MOP: {rows[-1]['train_wall']:.1f} s", flush=True)
            rows.append(run_task_parallel(spark, args, store_dir, work, jvm_pid))
            print(f"task parallelism: {rows[-1]['train_wall']:.1f} s", flush=True)
            rows.append(run_sequential(args, store_dir, work))
            print(f"sequential: {rows[-1]['train_wall']:.1f} s", flush=True)
    finally:
        spark.stop()
    text = report(rows, args)
    print(text)
    out = Path(args.out)
    out.write_text(text)
    plot(rows, args, out.with_suffix(".png"))
    print(f"written to {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
