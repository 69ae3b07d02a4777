"""A search with no JVM: pandas rows prepared by the driver, two `cerebro-worker` processes on loopback,
prediction on pandas, save and load, all in a process where no SparkContext ever starts."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.keras

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import os, socket, subprocess, sys, tempfile
sys.path.insert(0, {examples!r})
from quickstart import estimator_gen_fn
from synthetic import make_pandas
from cerebro_spark import Store, StandaloneBackend
from cerebro_spark.backend.standalone import read_secret
from cerebro_spark.tune import GridSearch, ModelSelectionModel, hp_choice

tmp = tempfile.mkdtemp()
secret = os.path.join(tmp, "secret"); read_secret(secret, create=True)
with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0)); port = probe.getsockname()[1]
workers = [subprocess.Popen([sys.executable, "-m", "cerebro_spark.backend.standalone", "--driver",
                             f"127.0.0.1:{{port}}", "--secret-file", secret, "--cores", "1", "--once"])
           for _ in range(2)]
rows = make_pandas(2_000, seed=5)
search = GridSearch(
    backend=StandaloneBackend(2, port=port, secret_file=secret, start_timeout_s=120),
    store=Store.create(os.path.join(tmp, "store")), estimator_gen_fn=estimator_gen_fn,
    search_space={{"width": hp_choice([8, 16]), "lr": hp_choice([1e-2, 1e-3]), "batch_size": 32}},
    num_epochs=2, evaluation_metric="val_accuracy", validation=0.2, feature_columns=["features"],
    label_columns=["label"], seed=11, verbose=0,
)
result = search.fit(rows)
assert all(w.wait(timeout=60) == 0 for w in workers)
history = result.get_all_model_history()
assert len(history) == 4 and all(len(h["val_accuracy"]) == 2 for h in history.values()), history
scored = result.transform(rows.head(100))
assert list(scored.columns[-3:]) == ["rawPrediction", "probability", "prediction"]
path = os.path.join(tmp, "saved")
result.write().save(path)
loaded = ModelSelectionModel.load(path)
assert loaded.best_model_id == result.best_model_id
assert loaded.transform(rows.head(100))["prediction"].tolist() == scored["prediction"].tolist()
from pyspark import SparkContext
assert SparkContext._gateway is None and SparkContext._active_spark_context is None
children = subprocess.run(["ps", "-o", "comm=", "--ppid", str(os.getpid())], capture_output=True, text=True).stdout
assert "java" not in children, children
print("best", result.best_model_id, max(max(h["val_accuracy"]) for h in history.values()))
"""


def test_a_search_on_standalone_workers_starts_no_jvm():
    code = textwrap.dedent(SCRIPT.format(examples=str(ROOT / "examples")))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    best, accuracy = proc.stdout.split()[-2:]
    assert best.startswith("m") and float(accuracy) > 0.6
