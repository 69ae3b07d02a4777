"""GPUs that Spark assigns reach the workers: ``spark.task.resource.gpu.amount`` on a real cluster.

CI has no GPU, so the cluster (``local-cluster``, two executor JVMs) announces one through Spark's own
resource discovery (a script that reports address ``"0"``), as a GPU cluster's workers do. Each worker
must receive the address Spark gave its task and report it, with the device TensorFlow then trains on
(``CPU`` here: TensorFlow sees no GPU), in the run record. Training on a real GPU is checked by the
``gpu``-marked test, on a machine that has one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.spark, pytest.mark.keras]

ROOT = Path(__file__).resolve().parents[2]


def test_each_worker_gets_the_gpu_spark_assigned_to_its_task(tmp_path):
    from local_cluster import run_quickstart

    discovery = tmp_path / "gpus.sh"
    discovery.write_text('#!/bin/sh\necho \'{"name": "gpu", "addresses": ["0"]}\'\n')
    discovery.chmod(0o755)
    confs = {
        "spark.worker.resource.gpu.amount": "1",
        "spark.worker.resource.gpu.discoveryScript": str(discovery),
        "spark.executor.resource.gpu.amount": "1",
        "spark.task.resource.gpu.amount": "1",
    }
    submit_args = " ".join(f"--conf {k}={v}" for k, v in confs.items()) + " pyspark-shell"
    store = tmp_path / "store"
    proc = run_quickstart("--store", str(store), "--rows", "4000", "--epochs", "1",
                          env={"PYSPARK_SUBMIT_ARGS": submit_args})  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    (run_dir,) = list((store / "runs").iterdir())
    workers = json.loads((run_dir / "search.json").read_text())["workers"]
    assert [w["worker_id"] for w in workers] == [0, 1]
    assert all(w["assigned_gpus"] == ["0"] for w in workers), workers
    assert all(w["device"] == "CPU" for w in workers), workers  # a CPU-only TensorFlow sees no GPU
    assert len({w["pid"] for w in workers}) == 2


@pytest.mark.gpu
def test_a_worker_given_a_gpu_trains_there():
    """On a machine with a GPU (``pytest -m gpu``, the gpu extra installed): excluded from ``make test``."""
    from cerebro_spark.backend.base import WorkerContext
    from cerebro_spark.training.tf_import import import_tensorflow
    from cerebro_spark.training.trainer import setup_worker

    tf = import_tensorflow()
    assert tf.config.list_physical_devices("GPU"), "TensorFlow sees no GPU: install the gpu extra"
    info = setup_worker(WorkerContext(0, 1, cores=1, gpus=("0",)))
    assert info["device"] == "GPU 0" and info["assigned_gpus"] == ["0"]
    assert tf.config.experimental.get_memory_growth(tf.config.list_physical_devices("GPU")[0])
