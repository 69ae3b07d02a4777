"""Benchmark: grid search against ASHA (and TPE's worker utilization) on the same data and Spark session.

Workload: 16 Keras MLPs (widths 8/64 x 8 learning rates from 1e-1 to 3e-5), up to ``--epochs``
epochs each, on ``--rows`` synthetic rows x 20 features, 2 workers, validation 20%, ranked by
val_accuracy. Grid trains every configuration for every epoch; ASHA (eta 3, rungs at 1, 3, ...)
tries the same 16 configurations and stops the weak ones early; TPE proposes 16 configurations for
3 epochs, asynchronously. Prints a Markdown table and writes ``benchmarks/results/search.md``:
best validation metric, search wall time, ratios to grid, total model-epochs trained, and worker
utilization = sum of unit times on the workers / (P x search wall time).

Usage: ``python benchmarks/bench_search.py [--master local[2]] [--rows 10000] [--epochs 9]``.
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
from synthetic import make_dataframe  # noqa: E402

WIDTHS = [8, 64]
RATES = [1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5]
METRIC = "val_accuracy"


def searches(spark, args, store_dir: str):
    """(name, search) pairs, all on the same Store (so the prepared data is reused) and backend."""
    from cerebro_spark import SparkBackend, Store
    from cerebro_spark.tune import ASHASearch, GridSearch, TPESearch, hp_choice, hp_loguniform

    common = dict(
        backend=SparkBackend(spark, num_workers=args.workers), store=Store.create(store_dir),
        estimator_gen_fn=estimator_gen_fn, evaluation_metric=METRIC, validation=0.2,
        feature_columns=["features"], label_columns=["label"], seed=args.seed, verbose=0,
    )  # fmt: skip
    grid_space = {"width": hp_choice(WIDTHS), "lr": hp_choice(RATES), "batch_size": 64}
    n = len(WIDTHS) * len(RATES)
    return [
        ("grid", GridSearch(search_space=grid_space, num_epochs=args.epochs, **common)),
        ("asha", ASHASearch(search_space=grid_space, num_models=n, min_epochs=1, max_epochs=args.epochs,
                            reduction_factor=3, **common)),
        ("tpe", TPESearch(search_space={"width": hp_choice(WIDTHS), "lr": hp_loguniform(3e-5, 1e-1),
                                        "batch_size": 64}, num_models=n, num_epochs=3, **common)),
    ]  # fmt: skip


def measure(name: str, search, df) -> dict[str, float | str | int]:
    start = time.perf_counter()
    result = search.fit(df)
    fit_wall = time.perf_counter() - start
    run = result.result
    busy = sum(u.finished_at - u.started_at for u in run.units)
    best = run.models[run.best_model_id]
    return {
        "name": name,
        "best": best.best_metrics()[METRIC],
        "best_params": f"{best.params}",
        "wall": run.wall_seconds,
        "fit_wall": fit_wall,
        "model_epochs": sum(m.epochs for m in run.models.values()),
        "models": len(run.models),
        "completed": sum(m.status == "completed" for m in run.models.values()),
        "utilization": busy / (run.num_workers * run.wall_seconds),
    }


def summarize(rows: list[dict], args) -> str:
    grid = rows[0]
    lines = [
        f"# Search benchmark: grid vs ASHA vs TPE ({args.rows} rows, {args.workers} workers, {args.master}, "
        f"seed {args.seed})",
        "",
        f"16 configurations (widths {WIDTHS} x learning rates {RATES}); grid and ASHA up to {args.epochs} "
        "epochs (ASHA: eta 3, rungs at 1, 3, 9...); TPE: 16 proposals x 3 epochs over a log-uniform learning "
        "rate. Wall time: workers up -> last unit (data prepared once and reused).",
        "",
        f"| search | best {METRIC} | best / grid best | search wall (s) | wall / grid wall | fit wall (s) "
        "| model-epochs | completed / models | utilization |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['best']:.4f} | {r['best'] / grid['best']:.3f} | {r['wall']:.1f} "
            f"| {r['wall'] / grid['wall']:.2f} | {r['fit_wall']:.1f} | {r['model_epochs']} "
            f"| {r['completed']} / {r['models']} | {r['utilization']:.3f} |"
        )
    lines += ["", *(f"- {r['name']} best configuration: {r['best_params']}" for r in rows)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--only", nargs="*", default=None, help="run only these searches (grid, asha, tpe)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "search.md"))
    args = parser.parse_args()

    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master(args.master).appName("cerebro-bench-search")
             .config("spark.ui.showConsoleProgress", "false").getOrCreate())  # fmt: skip
    spark.sparkContext.setLogLevel("ERROR")
    rows = []
    try:
        df = make_dataframe(spark, args.rows, seed=args.seed).cache()
        df.count()
        with tempfile.TemporaryDirectory(prefix="cerebro-bench-") as store_dir:
            for name, search in searches(spark, args, store_dir):
                if args.only is None or name in args.only:
                    rows.append(measure(name, search, df))
                    print(f"{name}: {rows[-1]}", flush=True)
    finally:
        spark.stop()
    table = summarize(rows, args)
    print(table)
    Path(args.out).write_text(table)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
