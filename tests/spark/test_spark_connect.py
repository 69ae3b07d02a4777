"""Searches from a Spark Connect session: no SparkContext on the client, the barrier stage through
``mapInArrow(..., barrier=True)``, the preparation's jobs tagged through the session.

A Connect session switches its whole process to Spark Connect, so each check runs in a process of its
own (a local Connect server started by pyspark, ``SparkSession.builder.remote("local[2]")``):
``connect_checks.py`` asserts fit, transform, save and load, ``KerasEstimator.fit``, ``fitMultiple``,
a Pipeline, and the quick failure when executors cannot reach the client; the quickstart runs with
``--remote``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.spark, pytest.mark.keras, pytest.mark.connect]

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 600


def _run(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    proc = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
    return proc.stdout


def test_fit_transform_persistence_fit_multiple_and_pipelines(tmp_path):
    out = _run([str(ROOT / "tests/spark/connect_checks.py"), str(tmp_path)], tmp_path)
    assert "fit, transform, save/load, KerasEstimator.fit, fitMultiple, Pipeline: ok" in out
    assert out.strip().endswith("CONNECT CHECKS PASSED")


def test_executors_that_cannot_reach_the_client_fail_within_seconds(tmp_path):
    out = _run([str(ROOT / "tests/spark/connect_checks.py"), str(tmp_path), "--unreachable"], tmp_path)
    assert "unreachable client: failed after" in out
    assert out.strip().endswith("CONNECT CHECKS PASSED")


def test_quickstart_with_remote(tmp_path):
    out = _run(
        [str(ROOT / "examples/quickstart.py"), "--remote", "local[2]", "--rows", "2000", "--epochs", "1",
         "--store", str(tmp_path / "store")],
        tmp_path,
    )  # fmt: skip
    assert "Leaderboard (best first):" in out
    assert "Best model m00" in out and "held-out rows" in out
