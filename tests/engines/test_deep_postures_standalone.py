"""The DeepPostures example on standalone workers (``--engine standalone``): plain processes, no Spark."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.keras

ROOT = Path(__file__).resolve().parents[2]


def test_the_tiny_selection_runs_on_two_cerebro_worker_processes_without_a_jvm(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable, str(ROOT / "examples" / "deep_postures" / "run.py"), "--tiny", "--engine", "standalone",
        "--start-workers", "2", "--port", str(port), "--store", str(tmp_path / "store"),
        "--secret-file", str(tmp_path / "secret"),
    ]  # fmt: skip
    no_java = {**os.environ, "PATH": str(Path(sys.executable).parent), "JAVA_HOME": str(tmp_path / "no-java")}
    proc = subprocess.run(
        command, capture_output=True, text=True, timeout=900, env=no_java
    )  # a JVM cannot start
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Leaderboard of 16 configurations" in proc.stdout
    majority = max(float(m) for m in re.findall(r"validation majority class ([0-9.]+)", proc.stdout))
    best = float(
        re.search(r"^\s+\d+\s+m\d{4}\s+\S+\s+\S+\s+\S+\s+\d+\s+([0-9.]+)", proc.stdout, re.M).group(1)
    )
    assert best > majority  # it learns: above always answering the majority class
