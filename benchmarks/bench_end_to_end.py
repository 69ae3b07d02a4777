"""Benchmark: a whole MOP ``fit`` against task parallelism, end to end, each in a fresh Spark session.

The workload a new user tries first: 8 Keras MLPs (two hidden layers of width 8 or 64 x learning rates
3e-2, 1e-2, 3e-3, 1e-3; Adam, batch 128), 3 epochs, 20,000 rows x 20 features read from Parquet,
validation 0.2, 2 workers on ``local[2]``. Two approaches, each in its own process (a fresh JVM and a
fresh Spark session), each run twice in its session: *cold* (the first run: Python workers start and
import TensorFlow) and *warm* (the second run):

- **MOP**: ``GridSearch(...).fit(df)`` with ``SparkBackend(num_workers=2)``, a Store in a temporary folder
  (the warm run reuses the prepared data, as a second search on the same DataFrame does);
- **task parallelism**, as SparkTrials-style tuning does it: ``df.toPandas()``, the rows split 80/20 and
  broadcast, then one Spark task per configuration (8 tasks on the 2 slots), each building its model and
  training it for all epochs with ``keras.Model.fit`` on the full training rows (one TensorFlow thread
  per task, as MOP's workers have), validating after each epoch.

Timed: from the call to its return (MOP: ``fit``; task parallelism: ``toPandas`` to the collected
results). Also reported: MOP's search phase (workers up to the last unit) against the *ideal makespan*,
the sum of the 8 models' training times inside the task-parallel tasks (``fit`` alone, one thread) over
2 workers; both approaches' best validation accuracy; and the peak memory of each session's processes
(driver, JVM, Spark's Python workers: the sum of their PSS, sampled). Prints a table and writes
``benchmarks/results/end_to_end.md``. ``--sweep 20000 200000 2000000`` runs each size once per approach and
writes one table and plot (``results/end_to_end_sweep.md``, ``.png``) that name the crossover.

Usage: ``python benchmarks/bench_end_to_end.py [--rows 20000] [--epochs 3] [--repeats 1] [--quick]
[--sweep ROWS ...]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

WIDTHS = [8, 64]
RATES = [3e-2, 1e-2, 3e-3, 1e-3]
CONFIGS = [{"width": w, "lr": lr} for w in WIDTHS for lr in RATES]


def mlp(width: int):
    import keras

    return keras.Sequential([
        keras.Input((20,)),
        keras.layers.Dense(width, activation="relu"),
        keras.layers.Dense(width, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ])  # fmt: skip


def build_model(width: int, lr: float):
    import keras

    model = mlp(width)
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="binary_crossentropy", metrics=["accuracy"])
    return model


def estimator_gen_fn(params):
    import keras

    from cerebro_spark.keras import KerasEstimator

    return KerasEstimator(
        model=mlp(params["width"]), optimizer=keras.optimizers.Adam(params["lr"]), loss="binary_crossentropy",
        metrics=["accuracy"], batch_size=params["batch_size"],
    )  # fmt: skip


# ---- the two approaches, in a child process ------------------------------------------------------


def run_mop(spark, df, args, store_dir: str) -> dict:
    from cerebro_spark import SparkBackend, Store
    from cerebro_spark.tune import GridSearch, hp_choice

    search = GridSearch(
        backend=SparkBackend(spark, num_workers=args.workers), store=Store.create(store_dir),
        estimator_gen_fn=estimator_gen_fn,
        search_space={"width": hp_choice(WIDTHS), "lr": hp_choice(RATES), "batch_size": args.batch},
        num_epochs=args.epochs, evaluation_metric="val_accuracy", validation=0.2,
        feature_columns=["features"], label_columns=["label"], seed=args.seed, verbose=0,
    )  # fmt: skip
    start = time.perf_counter()
    result = search.fit(df)
    wall = time.perf_counter() - start
    run = result.result
    return {
        "wall": wall,
        "search": run.wall_seconds,
        "utilization": run.utilization(),
        "best_val_accuracy": run.models[result.best_model_id].best_metrics()["val_accuracy"],
    }


def train_whole(config: dict, data, epochs: int, batch: int, seed: int) -> dict:
    """One task of task parallelism: a whole model on the full (broadcast) rows, one thread."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # a reused Python worker: TensorFlow already runs with these settings
        pass
    import keras

    x_train, y_train, x_val, y_val = data
    keras.utils.set_random_seed(seed)
    model = build_model(config["width"], config["lr"])
    start = time.perf_counter()
    history = model.fit(
        x_train, y_train, batch_size=batch, epochs=epochs, validation_data=(x_val, y_val), verbose=0
    )
    return {"train_s": time.perf_counter() - start, "val_accuracy": max(history.history["val_accuracy"])}


def run_tasks(spark, df, args) -> dict:
    import numpy as np

    start = time.perf_counter()
    frame = df.toPandas()
    x = np.stack(frame["features"].to_numpy()).astype(np.float32)
    y = frame["label"].to_numpy().astype(np.float32)
    order = np.random.default_rng(args.seed).permutation(len(x))
    cut = int(len(x) * 0.8)
    data = spark.sparkContext.broadcast((x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]))
    epochs, batch, seed = args.epochs, args.batch, args.seed
    results = (
        spark.sparkContext.parallelize(CONFIGS, len(CONFIGS))
        .map(lambda config: train_whole(config, data.value, epochs, batch, seed))
        .collect()
    )
    wall = time.perf_counter() - start
    data.destroy()
    return {
        "wall": wall,
        "ideal_makespan": sum(r["train_s"] for r in results) / args.workers,
        "best_val_accuracy": max(r["val_accuracy"] for r in results),
    }


def child(args) -> None:
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master(f"local[{args.workers}]").appName(f"bench-e2e-{args.child}")
             .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
             .getOrCreate())  # fmt: skip
    spark.sparkContext.setLogLevel("ERROR")
    runs = []
    try:
        with tempfile.TemporaryDirectory(prefix="cerebro-bench-e2e-") as store_dir:
            for _ in range(2):  # cold, then warm
                df = spark.read.parquet(args.data)
                runs.append(
                    run_mop(spark, df, args, store_dir) if args.child == "mop" else run_tasks(spark, df, args)
                )
    finally:
        spark.stop()
    print("RESULT " + json.dumps(runs))


# ---- the parent: data, child processes, the table -----------------------------------------------------


def write_data(path: str, rows: int, seed: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from synthetic import make_rows

    x, y = make_rows(rows, seed=seed)
    features = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1]).cast(
        pa.list_(pa.float32())
    )
    table = pa.table({"features": features, "label": pa.array(y)})
    os.makedirs(path, exist_ok=True)
    for i, part in enumerate(
        range(0, rows, rows // 4)
    ):  # four files, as a DataFrame written by Spark would be
        pq.write_table(table.slice(part, rows // 4), os.path.join(path, f"part-{i:05d}.parquet"))


class PeakMemory:
    """The peak, over a process's life, of the memory of it and all its descendants (the driver, the JVM,
    Spark's Python workers), sampled every ``interval_s``: the sum of their proportional set sizes (PSS,
    from ``/proc/<pid>/smaps_rollup``: pages shared by forked Python workers count once), in MB. Linux."""

    def __init__(self, pid: int, interval_s: float = 0.5) -> None:
        self.pid, self.interval_s, self.peak_mb = pid, interval_s, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_mb

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):  # a sampling period, not a wait for a result
            self.peak_mb = max(self.peak_mb, sum(map(_pss_mb, _descendants(self.pid))))


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _pss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


def run_child(approach: str, data: str, args) -> list[dict]:
    """Both runs of one approach in a fresh process; each run's dict gets the process tree's peak memory."""
    command = [sys.executable, __file__, "--child", approach, "--data", data, "--rows", str(args.rows),
               "--epochs", str(args.epochs), "--workers", str(args.workers), "--batch", str(args.batch),
               "--seed", str(args.seed)]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    memory = PeakMemory(proc.pid)
    stdout, stderr = proc.communicate()
    peak_mb = memory.stop()
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            runs = json.loads(line[len("RESULT ") :])
            return [{**run, "peak_mb": peak_mb} for run in runs]
    raise RuntimeError(f"the {approach} run failed:\n{stdout[-3000:]}\n{stderr[-5000:]}")


def report(mop: list[list[dict]], tasks: list[list[dict]], args) -> str:
    def med(runs: list[list[dict]], i: int, key: str) -> float:
        return statistics.median(r[i][key] for r in runs)

    cold, warm = med(mop, 0, "wall") / med(tasks, 0, "wall"), med(mop, 1, "wall") / med(tasks, 1, "wall")
    ideal = statistics.median(r[i]["ideal_makespan"] for r in tasks for i in (0, 1))
    search = med(mop, 1, "search")
    lines = [
        f"# A whole fit, MOP vs task parallelism ({len(CONFIGS)} MLPs x {args.epochs} epochs, {args.rows} rows, "
        f"batch {args.batch}, {args.workers} workers, local[{args.workers}], each in a fresh session)",
        "",
        f"Median of {args.repeats} fresh process(es) per approach; load average before the runs: {args.load}.",
        "",
        "| | cold (first run in the session) | warm (second run) |",
        "|---|---|---|",
        f"| MOP `GridSearch.fit` | {med(mop, 0, 'wall'):.1f} s | {med(mop, 1, 'wall'):.1f} s |",
        f"| task parallelism, incl. toPandas + broadcast | {med(tasks, 0, 'wall'):.1f} s | {med(tasks, 1, 'wall'):.1f} s |",
        f"| **MOP / task parallelism** (goal <= 1.0) | **{cold:.2f}** | **{warm:.2f}** |",
        "",
        f"- MOP search phase (warm): {search:.2f} s; ideal makespan (sum of the models' single-thread `fit` "
        f"times in the tasks / {args.workers}): {ideal:.2f} s; ratio **{search / ideal:.2f}** (goal <= 1.3)",
        f"- MOP worker utilization (warm): {med(mop, 1, 'utilization'):.3f}",
        f"- peak memory of the session's processes (driver, JVM, Python workers; PSS): MOP "
        f"{med(mop, 0, 'peak_mb'):.0f} MB, task parallelism {med(tasks, 0, 'peak_mb'):.0f} MB",
        f"- best val_accuracy: MOP {med(mop, 1, 'best_val_accuracy'):.4f}, task parallelism "
        f"{med(tasks, 1, 'best_val_accuracy'):.4f}",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=1, help="fresh processes per approach (medians)")
    parser.add_argument("--quick", action="store_true", help="4,000 rows, 1 epoch: a smoke run")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "end_to_end.md"))
    parser.add_argument(
        "--sweep",
        type=int,
        nargs="+",
        metavar="ROWS",
        help="a data-size sweep: these row counts, one table and plot (results/end_to_end_sweep.*)",
    )
    parser.add_argument("--child", choices=["mop", "tasks"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.quick:
        args.rows, args.epochs = 4_000, 1
    args.load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    if args.sweep:
        sweep(args)
        return
    mop, tasks = [], []
    with tempfile.TemporaryDirectory(prefix="cerebro-bench-e2e-data-") as tmp:
        data = os.path.join(tmp, "rows.parquet")
        write_data(data, args.rows, args.seed)
        for _ in range(args.repeats):  # interleaved, so that a drift in the machine's load hits both
            tasks.append(run_child("tasks", data, args))
            mop.append(run_child("mop", data, args))
    table = report(mop, tasks, args)
    print(table)
    Path(args.out).write_text(table)
    print(f"written to {args.out}")


def sweep(args) -> None:
    """One fresh session per approach and size; wall times, ratios and peak memory as a table and a plot."""
    rows_done = []
    for rows in args.sweep:
        args.rows = rows
        with tempfile.TemporaryDirectory(prefix="cerebro-bench-e2e-data-") as tmp:
            data = os.path.join(tmp, "rows.parquet")
            write_data(data, rows, args.seed)
            tasks, mop = run_child("tasks", data, args), run_child("mop", data, args)
        rows_done.append({"rows": rows, "mop": mop, "tasks": tasks})
        print(f"{rows:>10,} rows: MOP {mop[0]['wall']:.1f}/{mop[1]['wall']:.1f} s, tasks {tasks[0]['wall']:.1f}/"
              f"{tasks[1]['wall']:.1f} s (cold/warm), peak {mop[0]['peak_mb']:.0f} / {tasks[0]['peak_mb']:.0f} MB",
              flush=True)  # fmt: skip
    cold_wins = [r["rows"] for r in rows_done if r["mop"][0]["wall"] <= r["tasks"][0]["wall"]]
    lines = [
        f"# Data-size sweep: a whole fit, MOP vs task parallelism ({len(CONFIGS)} MLPs x {args.epochs} epochs, "
        f"batch {args.batch}, {args.workers} workers, local[{args.workers}], each approach and size in a fresh session)",
        "",
        f"Load average before the sweep: {args.load}. Peak memory: the largest sum, sampled every 0.5 s, of the "
        "proportional set sizes of the session's processes (driver, JVM, Spark's Python workers).",
        "",
        "| rows | MOP cold (s) | task parallelism cold (s) | cold ratio | MOP warm (s) | task parallelism warm (s) "
        "| warm ratio | MOP peak memory (MB) | task parallelism peak memory (MB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows_done:
        m, t = r["mop"], r["tasks"]
        lines.append(
            f"| {r['rows']:,} | {m[0]['wall']:.1f} | {t[0]['wall']:.1f} | {m[0]['wall'] / t[0]['wall']:.2f} | "
            f"{m[1]['wall']:.1f} | {t[1]['wall']:.1f} | {m[1]['wall'] / t[1]['wall']:.2f} | "
            f"{m[0]['peak_mb']:.0f} | {t[0]['peak_mb']:.0f} |"
        )
    lines += [
        "",
        "Crossover: a cold MOP `fit` is no slower than task parallelism from "
        + (f"{min(cold_wins):,} rows on (of the sizes run)." if cold_wins else "none of the sizes run.")
        + " A warm one is faster at every size where its ratio is below 1.",
    ]
    table = "\n".join(lines) + "\n"
    print(table)
    out = Path(args.out).with_name("end_to_end_sweep.md")
    out.write_text(table)
    _plot_sweep(rows_done, out.with_suffix(".png"))
    print(f"written to {out} and {out.with_suffix('.png')}")


def _plot_sweep(rows_done: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r["rows"] for r in rows_done]
    fig, (wall, memory) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, label, style, color in (("mop", "MOP", "-o", "C0"), ("tasks", "task parallelism", "-s", "C1")):
        wall.plot(x, [r[key][0]["wall"] for r in rows_done], style, color=color, label=f"{label}, cold")
        wall.plot(
            x, [r[key][1]["wall"] for r in rows_done], "--" + style[1], color=color, label=f"{label}, warm"
        )
        memory.plot(x, [r[key][0]["peak_mb"] for r in rows_done], style, color=color, label=label)
    for ax, title, unit in ((wall, "wall time of a whole fit", "s"), (memory, "peak memory (PSS)", "MB")):
        ax.set_xscale("log")
        ax.set_xlabel("rows")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
