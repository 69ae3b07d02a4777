"""Benchmark: the cost of a model hop against a sub-epoch's training, by model size: now and before.

For MLPs of about 10k, 100k, 1M and 10M parameters (two hidden layers of equal width on 64 input
features, Adam), on one fixed training partition held in memory (``--rows`` rows, batch 64). A hop
moves a model's state (weights and optimizer slots) from the worker that trained it to the next one.
Two models of the same structure alternate on one worker, as in a learning-rate grid, so every
restore is a real one. Measured on the worker's real code path:

- **now** (the state in memory): ``keras_io.get_state`` after the sub-epoch (save), the state blob
  sent over the project's control channel (``backend.protocol.Channel`` on a loopback TCP socket)
  twice, worker to driver and driver to the next worker (transfer), and ``trainer._model_at`` with
  the blob (restore: ``keras_io.set_state``). The driver also writes the blob to the Store as the
  durable checkpoint, on its background writer thread: off the critical path, not counted;
- **before** (a file round trip through the Store, the releases before): ``save_weights`` to a
  temporary ``.weights.h5`` then ``Store.upload``; ``Store.local_copy`` then ``load_weights``;
- **build** (once per structure per worker, reported apart): the first ``trainer._model_at``, which
  loads the model's ``.keras`` file and its version 0;
- **train**: one pass over the partition with ``StepFunctions.train_pass``, as ``trainer.train_sub_epoch``
  runs it.

The models are written by ``ml._model_io.write_initial_model`` (as ``fit`` does on the driver) into
a real local :class:`~cerebro_spark.Store` (a temporary folder), with the real key layout; each figure
is the median of ``--repeats`` hops after one warm-up. Prints a table and writes
``benchmarks/results/hop_overhead.md`` and ``hop_overhead.png``.

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


def loopback_channels():
    """Two ends of the control channel on a loopback TCP connection (what a hop's state travels over)."""
    import socket

    from cerebro_spark.backend.protocol import Channel

    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        peer, _ = server.accept()
    key = bytes(32)  # the frames carry their MAC, as after a real handshake
    return Channel(client, key, "worker"), Channel(peer, key, "driver")


def transfer(a, b, state: bytes) -> float:
    """Seconds to send ``state`` in a result from ``a`` to ``b``, then in a request back (a hop's two legs)."""
    import threading

    from cerebro_spark.backend.base import TaskRequest, TaskResult

    t0 = time.perf_counter()
    sender = threading.Thread(target=a.send, args=(TaskResult(1, 0, True, {"state": state}),))
    sender.start()
    received = b.recv()
    sender.join()
    sender = threading.Thread(target=b.send, args=(TaskRequest(2, "f", {"state": received.value["state"]}),))
    sender.start()
    a.recv()
    sender.join()
    return time.perf_counter() - t0


def measure(store, width: int, x, y, repeats: int) -> dict[str, float]:
    from cerebro_spark.backend.base import WorkerContext
    from cerebro_spark.training import keras_io, trainer

    ctx = WorkerContext(worker_id=0, num_workers=1, cores=os.cpu_count() or 1)
    spec_a, params = build_and_store(store, width, "bench", f"a{width}")
    spec_b, _ = build_and_store(store, width, "bench", f"b{width}")
    t0 = time.perf_counter()
    trainer._model_at(ctx, store, spec_a, 0)  # the first time this worker sees the structure
    build_s = time.perf_counter() - t0
    ends = loopback_channels()
    states = {spec_a.model_id: keras_io.get_state(trainer._model_at(ctx, store, spec_a, 0).model),
              spec_b.model_id: keras_io.get_state(trainer._model_at(ctx, store, spec_b, 0).model)}  # fmt: skip
    times: dict[str, list[float]] = {
        k: [] for k in ("restore", "save", "transfer", "old_restore", "old_save", "train")
    }
    versions = {spec_a.model_id: 0, spec_b.model_id: 0}
    for i in range(repeats + 1):  # the first round warms up (traces the steps)
        spec = spec_a if i % 2 == 0 else spec_b
        version = versions[spec.model_id]
        t0 = time.perf_counter()
        held = trainer._model_at(
            ctx, store, spec, version, states[spec.model_id]
        )  # the other model's state is held
        t1 = time.perf_counter()
        held.train_pass(x, y, None, spec.batch_size)
        t2 = time.perf_counter()
        state = keras_io.get_state(held.model)
        t3 = time.perf_counter()
        moved = transfer(*ends, state)
        trainer._models(ctx)[spec.cache_key] = (held, (spec.model_id, version + 1))
        states[spec.model_id], versions[spec.model_id] = state, version + 1
        old_save, old_restore = old_round_trip(store, held.model, spec.checkpoint_key(version + 1))
        if i:
            for key, value in (("restore", t1 - t0), ("train", t2 - t1), ("save", t3 - t2), ("transfer", moved),
                               ("old_save", old_save), ("old_restore", old_restore)):  # fmt: skip
                times[key].append(value)
    for end in ends:
        end.sock.close()
    m = {k: statistics.median(v) for k, v in times.items()}
    return {"width": width, "params": params, "state_bytes": len(states[spec_a.model_id]), "build_s": build_s,
            **{f"{k}_s": v for k, v in m.items()},
            "overhead": (m["restore"] + m["save"] + m["transfer"]) / m["train"],
            "old_overhead": (m["old_restore"] + m["old_save"]) / m["train"]}  # fmt: skip


def old_round_trip(store, model, key: str) -> tuple[float, float]:
    """Save then restore ``model``'s state as the releases before did: a ``.weights.h5`` through the Store."""
    key = key.replace(".state", ".weights.h5")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cerebro-ckpt-") as tmp:
        path = os.path.join(tmp, "state.weights.h5")
        model.save_weights(path)
        store.upload(path, key)
    t1 = time.perf_counter()
    with store.local_copy(key) as path:
        model.load_weights(path)
    t2 = time.perf_counter()
    store.delete(key)
    return t1 - t0, t2 - t1


def table(rows: list[dict[str, float]], args) -> str:
    lines = [
        f"# Hop overhead by model size ({args.rows} rows x {INPUTS} features per sub-epoch, batch 64, "
        f"median of {args.repeats} hops, {os.cpu_count()} cores, load average before: {args.load})",
        "",
        "now: save = get_state, transfer = the state over the control channel twice (worker -> driver -> "
        "worker, loopback TCP), restore = set_state. before: .weights.h5 through a local Store.",
        "",
        "| parameters | state (MB) | build once (ms) | now: save | transfer | restore | **hop (ms)** "
        "| before: save | restore | **hop (ms)** | sub-epoch train (ms) | hop / train now | before |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        now = r["save_s"] + r["transfer_s"] + r["restore_s"]
        before = r["old_save_s"] + r["old_restore_s"]
        lines.append(
            f"| {r['params']:,} | {r['state_bytes'] / 1e6:.2f} | {1000 * r['build_s']:.0f} | "
            f"{1000 * r['save_s']:.1f} | {1000 * r['transfer_s']:.1f} | {1000 * r['restore_s']:.1f} | "
            f"**{1000 * now:.1f}** | {1000 * r['old_save_s']:.1f} | {1000 * r['old_restore_s']:.1f} | "
            f"**{1000 * before:.1f}** | {1000 * r['train_s']:.0f} | {r['overhead']:.3f} | {r['old_overhead']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    params = [r["params"] for r in rows]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    now = [1000 * (r["save_s"] + r["transfer_s"] + r["restore_s"]) for r in rows]
    before = [1000 * (r["old_save_s"] + r["old_restore_s"]) for r in rows]
    ax.plot(params, now, marker="o", label="hop now (state in memory)")
    ax.plot(params, before, marker="o", label="hop before (.weights.h5 via the Store)")
    ax.plot(params, [1000 * r["train_s"] for r in rows], marker="o", label="sub-epoch training")
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
    args.load = " ".join(f"{v:.2f}" for v in os.getloadavg())
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
            r = rows[-1]
            print(f"{r['params']:>12,} params: hop {1000 * (r['save_s'] + r['transfer_s'] + r['restore_s']):.1f} ms "
                  f"(before {1000 * (r['old_save_s'] + r['old_restore_s']):.1f} ms), train {1000 * r['train_s']:.0f} ms",
                  flush=True)  # fmt: skip
    text = table(rows, args)
    print(text)
    out = Path(args.out)
    out.write_text(text)
    plot(rows, out.with_suffix(".png"))
    print(f"written to {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
