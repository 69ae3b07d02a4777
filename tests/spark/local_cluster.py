"""Running ``examples/quickstart.py`` on ``local-cluster`` in a process of its own (one SparkContext per
process), for the tests that need real executor JVMs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_quickstart(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``quickstart.py --master local-cluster[2,1,1024] *args``; ``env`` is added to this environment.

    PYSPARK_PYTHON is left unset: on local masters the package runs Spark's Python workers with the
    driver's interpreter itself (the system ``python3`` would lack TensorFlow and pyarrow).
    """
    import pyspark

    full_env = {k: v for k, v in os.environ.items() if k not in ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON")}
    full_env["SPARK_LOCAL_IP"] = "127.0.0.1"
    full_env.update(env or {})
    work = Path(pyspark.__file__).parent / "work"
    existing = set(work.iterdir()) if work.exists() else set()
    try:
        return subprocess.run(
            [sys.executable, str(ROOT / "examples" / "quickstart.py"), "--master", "local-cluster[2,1,1024]", *args],
            env=full_env, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
    finally:
        if work.exists():  # local-cluster leaves executor logs inside the pyspark package
            for path in set(work.iterdir()) - existing:
                shutil.rmtree(path, ignore_errors=True)
