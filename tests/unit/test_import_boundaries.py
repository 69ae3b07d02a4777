"""The layers hold at run time: the pure parts import without Spark, TensorFlow or Keras."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

BLOCKED = ["pyspark", "tensorflow", "keras", "pyarrow"]


def run_with_blocked_modules(code: str, blocked: list[str]) -> subprocess.CompletedProcess[str]:
    prelude = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in blocked)
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True
    )


@pytest.mark.parametrize(
    "module",
    ["cerebro_spark", "cerebro_spark.scheduler", "cerebro_spark.search", "cerebro_spark.store",
     "cerebro_spark.driver", "cerebro_spark.backend", "cerebro_spark.backend.local"],
)  # fmt: skip
def test_pure_layers_import_without_heavy_libraries(module):
    proc = run_with_blocked_modules(f"import {module}", BLOCKED)
    assert proc.returncode == 0, proc.stderr


def test_the_blocking_really_blocks():
    """The check above could pass vacuously if blocking did nothing: it does not."""
    proc = run_with_blocked_modules("import cerebro_spark.ml", BLOCKED)
    assert proc.returncode != 0 and "pyspark" in proc.stderr


def test_driver_runs_a_search_without_tensorflow(tmp_path):
    """The MOP loop with the in-process backend and fake tasks: no pyspark, TensorFlow or Keras needed."""
    code = f"""
    from cerebro_spark import LocalBackend, Store
    from cerebro_spark.data.spec import ColumnSpec, DatasetSpec, PartitionSpec
    from cerebro_spark.driver import MopDriver, RunSettings, TaskNames
    from cerebro_spark.search import GridSearchAlgorithm, hp_choice
    from cerebro_spark.training.model_spec import ModelSpec

    parts = tuple(PartitionSpec(f"p{{i}}", 10) for i in range(2))
    data = DatasetSpec("f", "data/f", (ColumnSpec("x", "float32"),), (ColumnSpec("y", "int64"),), parts, parts)
    from cerebro_spark.testing.fakes import fake_tasks
    tasks = fake_tasks()
    driver = MopDriver(LocalBackend(2), Store.create({str(tmp_path)!r}), data,
                       GridSearchAlgorithm({{"rate": hp_choice([1.0, 2.0])}}, 2),
                       lambda t: ModelSpec("r", t.model_id, 8, params=t.params),
                       RunSettings("r", "val_loss", "min", seed=0), tasks=tasks)
    print(driver.run().best_model_id)
    """
    proc = run_with_blocked_modules(code, BLOCKED)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "m0001"
