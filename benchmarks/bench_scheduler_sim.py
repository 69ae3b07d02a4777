"""Benchmark: the pure MOP scheduler at scale, driven by a simulated clock (no Spark, no Keras).

The scheduler (:class:`cerebro_spark.scheduler.MopScheduler`, training units only: ``evaluate=False``)
is driven the way the driver loop drives it, but a unit's run time comes from a table instead of
a worker: an event queue of unit completions advances a simulated clock; at each instant the
finished units are completed, models at an epoch end are continued (or stopped after the last
epoch), and the idle workers get new assignments.

Unit times ``t(model, partition)``:

- ``homogeneous``: every unit takes 1;
- ``per-model``: model ``m`` takes ``s_m`` per unit, ``s_m`` log-uniform in [1, 10] (models of
  different sizes);
- ``per-partition``: partition ``j`` takes ``c_j`` per unit, ``c_j`` uniform in [0.5, 1.5] (uneven
  partitions or workers);
- ``both``: ``s_m * c_j`` times a +-10% jitter per unit.

Reported per (models, workers, times, mode): the makespan over the issue's lower bound
``max(total work / P, longest model's work)``; over the tighter bound that also counts the busiest
worker (``max_j sum_m t(m, j)``: partition ``j`` can only be trained on worker ``j``, so with
per-partition times no schedule beats it); and the scheduler's decision time per assignment (the
wall time spent in ``complete``, ``continue_model``/``stop_model`` and ``next_assignments``,
divided by the number of assignments), mean, and the 99th percentile of ``next_assignments``' time
per assignment over its calls.

Three modes are measured: ``fixed`` (the default, ``fixed_order=True, balance=True``: each model
visits the partitions of an epoch in a Latin-square order fixed by the seed, so results do not depend
on timing; idle workers prefer the models that lag behind), ``random`` (``fixed_order=False,
balance=True``: any partition not yet visited this epoch is runnable) and ``uniform``
(``fixed_order=False, balance=False``: the paper's Algorithm 1, a uniform pick among runnable units).

Writes ``benchmarks/results/scheduler_sim.md`` and ``scheduler_sim.png``.

Usage: ``python benchmarks/bench_scheduler_sim.py [--epochs 2] [--seed 0] [--quick]``.
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cerebro_spark.scheduler import MopScheduler  # noqa: E402

SCALES = [(8, 2), (16, 4), (64, 8), (16, 16), (256, 16), (64, 64), (256, 64), (1024, 64)]
QUICK_SCALES = [(8, 2), (64, 8), (256, 64)]
TIMES = ["homogeneous", "per-model", "per-partition", "both"]
#: (label, fixed_order, balance): the default; any order with lagging models first; the paper's Algorithm 1.
TITLES = {
    "fixed": "fixed (Latin) orders, lagging first (default)",
    "random": "any order, lagging first",
    "uniform": "any order, uniform pick (paper)",
}
MODES = [("fixed", True, True), ("random", False, True), ("uniform", False, False)]


@dataclass
class SimResult:
    models: int
    workers: int
    times: str
    mode: str
    makespan: float
    bound: float
    tight_bound: float
    assignments: int
    decision_mean_s: float
    decision_p99_s: float
    idle_share: float

    @property
    def ratio(self) -> float:
        return self.makespan / self.bound

    @property
    def tight_ratio(self) -> float:
        return self.makespan / self.tight_bound


def unit_times(
    kind: str, models: int, workers: int, epochs: int, rng: random.Random
) -> list[list[list[float]]]:
    """``t[e][m][j]``: the time of model ``m``'s unit on partition ``j`` in epoch ``e`` (0-based)."""
    size = [1.0] * models
    speed = [1.0] * workers
    if kind in ("per-model", "both"):
        size = [math.exp(rng.uniform(0.0, math.log(10.0))) for _ in range(models)]
    if kind in ("per-partition", "both"):
        speed = [rng.uniform(0.5, 1.5) for _ in range(workers)]
    jitter = 0.1 if kind == "both" else 0.0
    return [
        [
            [size[m] * speed[j] * (1.0 + rng.uniform(-jitter, jitter)) for j in range(workers)]
            for m in range(models)
        ]
        for _ in range(epochs)
    ]


def simulate(models: int, workers: int, times: str, mode: str, epochs: int, seed: int) -> SimResult:
    t = unit_times(times, models, workers, epochs, random.Random(f"{seed}:{times}:{models}:{workers}"))
    ids = [f"m{i:05d}" for i in range(models)]
    index = {mid: i for i, mid in enumerate(ids)}
    total = sum(sum(row) for epoch in t for row in epoch)
    longest = max(sum(sum(t[e][m]) for e in range(epochs)) for m in range(models))
    busiest = max(sum(t[e][m][j] for e in range(epochs) for m in range(models)) for j in range(workers))
    bound = max(total / workers, longest)

    _, fixed_order, balance = next(m for m in MODES if m[0] == mode)
    sched = MopScheduler(workers, seed=seed, fixed_order=fixed_order, evaluate=False, balance=balance)
    for mid in ids:
        sched.add_model(mid)
    events: list[tuple[float, int]] = []  # (finish time, worker)
    running = {}
    now = 0.0
    idle = list(range(workers))
    busy_time = 0.0
    n_assign = 0
    spent = 0.0
    per_call: list[float] = []  # next_assignments' wall time per assignment, per call
    perf = time.perf_counter
    while True:
        c0 = perf()
        given = sched.next_assignments(idle)
        c1 = perf()
        spent += c1 - c0
        if given:
            per_call.append((c1 - c0) / len(given))
        for a in given:
            u = a.unit
            d = t[u.epoch - 1][index[u.model_id]][u.partition]
            heapq.heappush(events, (now + d, a.worker_id))
            running[a.worker_id] = a
            busy_time += d
        n_assign += len(given)
        if not events:
            break
        now, w = heapq.heappop(events)
        finished = [w]
        while events and events[0][0] == now:
            finished.append(heapq.heappop(events)[1])
        c0 = perf()
        for w in finished:
            end = sched.complete(running.pop(w))
            if end is not None:
                if end.epoch < epochs:
                    sched.continue_model(end.model_id)
                else:
                    sched.stop_model(end.model_id)
        spent += perf() - c0
        idle = sorted(set(range(workers)) - set(running))
    if not sched.is_finished():
        raise RuntimeError(f"simulation stalled with models left: {sched.active_models[:5]}")
    expected = models * workers * epochs
    if n_assign != expected:
        raise RuntimeError(f"{n_assign} assignments, expected {expected}")
    return SimResult(
        models, workers, times, mode, now, bound, max(bound, busiest), n_assign,
        spent / n_assign, statistics.quantiles(per_call, n=100)[98] if len(per_call) > 1 else per_call[0],
        max(0.0, 1.0 - busy_time / (workers * now)),
    )  # fmt: skip


def table(results: list[SimResult], args) -> str:
    lines = [
        f"# MOP scheduler at scale, simulated clock ({args.epochs} epochs, seed {args.seed}, training units only)",
        "",
        *([args.note, ""] if args.note else []),
        "Bound = max(total work / P, longest model's work); tight bound = max(bound, busiest worker's work).",
        "Decision time = scheduler wall time (complete + continue/stop + next_assignments) / assignments.",
        "",
        "| models | workers | unit times | order | makespan / bound | makespan / tight bound | idle share "
        "| assignments | decision mean (us) | p99 of next_assignments per assignment (us) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.models} | {r.workers} | {r.times} | {r.mode} | "
            f"{r.ratio:.3f} | {r.tight_ratio:.3f} | {r.idle_share:.3f} | {r.assignments} | "
            f"{1e6 * r.decision_mean_s:.1f} | {1e6 * r.decision_p99_s:.0f} |"
        )
    lines.append("")
    for mode, _, _ in MODES:
        mine = [r for r in results if r.mode == mode]
        worst = max(mine, key=lambda r: r.ratio)
        worst_tight = max(mine, key=lambda r: r.tight_ratio)
        lines.append(
            f"- {mode}: worst makespan / bound {worst.ratio:.3f} "
            f"({worst.models} models x {worst.workers} workers, {worst.times}); worst / tight bound "
            f"{worst_tight.tight_ratio:.3f} ({worst_tight.models} x {worst_tight.workers}, {worst_tight.times}); "
            f"slowest mean decision {1e6 * max(r.decision_mean_s for r in mine):.1f} us"
        )
    return "\n".join(lines) + "\n"


def plot(results: list[SimResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(MODES), figsize=(15, 4.5), sharey=True)
    labels = sorted({(r.models, r.workers) for r in results}, key=lambda mw: (mw[1], mw[0]))
    x = range(len(labels))
    for ax, (mode, _, _) in zip(axes, MODES, strict=True):
        for kind in TIMES:
            ys = []
            for mw in labels:
                match = [
                    r for r in results if (r.models, r.workers) == mw and r.times == kind and r.mode == mode
                ]
                ys.append(match[0].tight_ratio if match else float("nan"))
            ax.plot(x, ys, marker="o", label=kind)
        ax.axhline(1.05, color="grey", linestyle="--", linewidth=1, label="goal 1.05")
        ax.set_xticks(list(x), [f"{m}x{w}" for m, w in labels], rotation=45)
        ax.set_title(TITLES[mode])
        ax.set_xlabel("models x workers")
    axes[0].set_ylabel("makespan / tight lower bound")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="three scales only")
    parser.add_argument("--note", default="", help="a line to add under the title (e.g. the machine)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "scheduler_sim.md"))
    args = parser.parse_args()

    results = []
    for models, workers in QUICK_SCALES if args.quick else SCALES:
        for kind in TIMES:
            for mode, _, _ in MODES:
                r = simulate(models, workers, kind, mode, args.epochs, args.seed)
                results.append(r)
                print(
                    f"{models:5d} models x {workers:3d} workers  {kind:13s} {mode:8s}  "
                    f"makespan/bound {r.ratio:.3f}  /tight {r.tight_ratio:.3f}  "
                    f"decision {1e6 * r.decision_mean_s:.1f} us",
                    flush=True,
                )
    text = table(results, args)
    print(text)
    out = Path(args.out)
    out.write_text(text)
    plot(results, out.with_suffix(".png"))
    print(f"written to {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
