"""The layers hold at run time: the pure parts import without Spark, TensorFlow or Keras."""

from __future__ import annotations

import ast
import pathlib
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
     "cerebro_spark.driver", "cerebro_spark.backend", "cerebro_spark.backend.local",
     "cerebro_spark.observers.search_observers"],
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


PACKAGE_ROOT = pathlib.Path(__file__).resolve().parents[2] / "cerebro_spark"


def private_imports_across_packages() -> list[str]:
    """Every import, by a module of one subpackage, of a private (``_``) module or name of another
    (``cerebro_spark.ml`` importing ``cerebro_spark.data._petastorm`` or ``store.fs._restore_store``).
    The root package's own private modules (``_trust``, ``_version``) serve every subpackage."""
    found = []
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
        owner = parts[1] if len(parts) > 2 else None  # the subpackage, None for the root's modules
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [(node.module, alias.name) for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [(alias.name, None) for alias in node.names]
            else:
                continue
            for module, name in targets:
                target = module.split(".")
                if target[0] != "cerebro_spark" or len(target) < 3 or target[1] == owner:
                    continue
                if any(p.startswith("_") for p in target[2:]) or (name or "").startswith("_"):
                    found.append(
                        f"{'.'.join(parts)}:{node.lineno} imports {module}{'.' + name if name else ''}"
                    )
    return found


def test_no_module_imports_the_privates_of_another_package():
    assert private_imports_across_packages() == []


def test_the_private_import_check_finds_one(tmp_path, monkeypatch):
    """The check above could pass vacuously: a module reaching into another package's private is found."""
    fake = tmp_path / "cerebro_spark"
    (fake / "ml").mkdir(parents=True)
    (fake / "ml" / "bad.py").write_text("from cerebro_spark.data._petastorm import check_columns\n")
    (fake / "ml" / "good.py").write_text("from cerebro_spark.ml._fit import run_search\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE_ROOT", fake)
    assert private_imports_across_packages() == [
        "cerebro_spark.ml.bad:1 imports cerebro_spark.data._petastorm.check_columns"
    ]
