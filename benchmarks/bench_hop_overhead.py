"""Benchmark: the cost of a model hop (restore + save of its state) against a sub-epoch's training, by model size.

For MLPs of about 10k, 100k, 1M and 10M parameters (two hidden layers of equal width on 64 input
features, Adam), on one fixed training partition held in memory (``--rows`` rows, batch 64):

- **restore**: what a worker does when a model hops onto it and the worker already holds a built
  model of the same structure with another model's state: ``trainer._model_at`` (the worker's cache
  lookup + ``_load_checkpoint``: ``Store.local_copy`` of ``ckpt-NNNNNN.weights.h5`` and
  ``keras.Model.load_weights``, weights and optimizer slots);
- **save**: ``trainer._save_checkpoint`` after the sub-epoch (``save_weights`` to a temporary file,
  then ``Store.upload`` to the versioned key of ``store.layout.checkpoint_key``);
- **build** (once per structure per worker, reported apart): the first ``trainer._model_at``, which
  loads the model's ``.keras`` file and its version 0;
- **train**: ``keras.Model.fit`` for one pass over the partition, as ``trainer.train_sub_epoch`` calls it.

The models are written by ``ml._model_io.write_initial_model`` (as ``fit`` does on the driver) into
a real local :class:`~cerebro_spark.Store` (a temporary folder), with the real key layout; each figure is the median of ``--repeats`` hops after one warm-up. Prints a table
and writes ``benchmarks/results/hop_overhead.md`` and ``hop_overhead.png``.

Usage: ``python benchmarks/bench_hop_overhead.py [--rows 4096] [--repeats 5] [--params 10000 ...] [--quick]``.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

INPUTS = 64
TARGETS = [10_000, 100_000, 1_000_000, 10_000_000]


def width_for(params: int) -> int:
    """Hidden width ``w`` of a 64 -> w -> w -> 1 MLP with about ``params`` parameters (w^2 + 67w + 1)."""
    return max(1, round((-(INPUTS + 3) + math.sqrt((INPUTS + 3) ** 2 + 4 * (params - 1))) / 2))


def build_and_store(store, width: int, run_id: str, model_id: str):
    """Compile a model and write it (``model.keras`` and version 0) the way ``fit`` does on the driver."""
    import keras

    from cerebro_spark.keras import KerasEstimator
    from cerebro_spark.ml._model_io import write_initial_model

    model = keras.Sequential([
        keras.Input((INPUTS,)),
        keras.layers.Dense(width, activation="relu"),
        keras.layers.Dense(width, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ])  # fmt: skip
    est = KerasEstimator(model=model, optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy",
                         metrics=["accuracy"], batch_size=64)  # fmt: skip
    spec = write_initial_model(store, run_id, model_id, est, {"width": width})
    return spec, model.count_params()


def measure(store, width: int, x, y, repeats: int) -> dict[str, float]:
    from cerebro_spark.backend.base import WorkerContext
    from cerebro_spark.training import trainer

    ctx = WorkerContext(worker_id=0, num_workers=1, cores=os.cpu_count() or 1)
    # Two models of the same structure, as in a learning-rate grid: a hop swaps the state in.
    spec_a, params = build_and_store(store, width, "bench", f"a{width}")
    spec_b, _ = build_and_store(store, width, "bench", f"b{width}")
    t0 = time.perf_counter()
    trainer._model_at(ctx, store, spec_a, 0)  # the first time this worker sees the structure
    build_s = time.perf_counter() - t0
    ckpt_bytes = os.path.getsize(store.local_path(spec_a.checkpoint_key(0)))

    restore, save, train = [], [], []
    versions = {spec_a.model_id: 0, spec_b.model_id: 0}
    for i in range(repeats + 1):  # the first round warms up (traces fit)
        spec = spec_a if i % 2 == 0 else spec_b
        version = versions[spec.model_id]
        t0 = time.perf_counter()
        model = trainer._model_at(ctx, store, spec, version)  # the other model's state is held: a real load
        t1 = time.perf_counter()
        model.fit(x, y, batch_size=spec.batch_size, epochs=1, shuffle=False, verbose=0)
        t2 = time.perf_counter()
        trainer._save_checkpoint(store, model, spec.checkpoint_key(version + 1))
        t3 = time.perf_counter()
        trainer._models(ctx)[spec.cache_key] = (model, (spec.model_id, version + 1))
        versions[spec.model_id] = version + 1
        if i:
            restore.append(t1 - t0)
            train.append(t2 - t1)
            save.append(t3 - t2)
    r, s, t = statistics.median(restore), statistics.median(save), statistics.median(train)
    return {"width": width, "params": params, "ckpt_bytes": ckpt_bytes, "build_s": build_s,
            "restore_s": r, "save_s": s, "train_s": t, "overhead": (r + s) / t}  # fmt: skip


def table(rows: list[dict[str, float]], args) -> str:
    lines = [
        f"# Hop overhead by model size ({args.rows} rows x {INPUTS} features per sub-epoch, batch 64, "
        f"median of {args.repeats} hops, {os.cpu_count()} cores)",
        "",
        "| parameters | width | checkpoint (MB) | build once (ms) | restore (ms) | save (ms) | sub-epoch train (ms) "
        "| (restore + save) / train |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['params']:,} | {r['width']} | {r['ckpt_bytes'] / 1e6:.2f} | {1000 * r['build_s']:.0f} | "
            f"{1000 * r['restore_s']:.1f} | {1000 * r['save_s']:.1f} | {1000 * r['train_s']:.0f} | "
            f"{r['overhead']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    params = [r["params"] for r in rows]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for key, label in (("restore_s", "restore"), ("save_s", "save"), ("train_s", "sub-epoch training")):
        ax.plot(params, [1000 * r[key] for r in rows], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("model parameters")
    ax.set_ylabel("time (ms)")
    ax.set_title("Hop overhead vs sub-epoch training")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--params", type=int, nargs="+", default=TARGETS, help="model sizes (parameters)")
    parser.add_argument("--quick", action="store_true", help="1,024 rows, 2 repeats, up to 1M parameters")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "hop_overhead.md"))
    args = parser.parse_args()
    targets = args.params
    if args.quick:
        args.rows, args.repeats, targets = 1024, 2, TARGETS[:3]

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np

    from cerebro_spark import Store

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.rows, INPUTS)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)
    rows = []
    with tempfile.TemporaryDirectory(prefix="cerebro-bench-hop-") as store_dir:
        store = Store.create(store_dir)
        for target in targets:
            rows.append(measure(store, width_for(target), x, y, args.repeats))
            print(f"{rows[-1]['params']:>12,} params: restore {1000 * rows[-1]['restore_s']:.1f} ms, "
                  f"save {1000 * rows[-1]['save_s']:.1f} ms, train {1000 * rows[-1]['train_s']:.0f} ms", flush=True)  # fmt: skip
    text = table(rows, args)
    print(text)
    out = Path(args.out)
    out.write_text(text)
    plot(rows, out.with_suffix(".png"))
    print(f"written to {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
