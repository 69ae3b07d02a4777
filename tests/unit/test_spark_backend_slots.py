"""SparkBackend waits for executors that are still registering on a cluster, and only there (no JVM:
the cluster's slot count is stood in for; the real case is tests/spark/test_standalone_cluster.py)."""

from __future__ import annotations

import pytest

from cerebro_spark.backend import spark as spark_backend
from cerebro_spark.errors import BackendError


def backend_on(monkeypatch, master: str, slot_counts: list[int], timeout_s: float = 5.0):
    """A SparkBackend for 2 workers whose cluster reports ``slot_counts``, one per look (the last repeats)."""
    looks = []

    def task_slots(sc):
        looks.append(sc)
        return slot_counts[min(len(looks), len(slot_counts)) - 1], "stand-in"

    monkeypatch.setattr(spark_backend, "task_slots", task_slots)
    monkeypatch.setattr(spark_backend, "master", lambda sc: master)
    return spark_backend.SparkBackend(num_workers=2, start_timeout_s=timeout_s), looks


def test_executors_registering_on_a_cluster_are_waited_for(monkeypatch, caplog):
    backend, looks = backend_on(monkeypatch, "spark://host:7077", [0, 1, 2])
    assert backend._resolve_num_workers(object()) == 2
    assert len(looks) == 3
    assert "waiting up to 5 s (start_timeout_s) for executors: 0 of the 2 task slots" in caplog.text


def test_a_cluster_that_stays_too_small_fails_after_start_timeout(monkeypatch):
    backend, looks = backend_on(monkeypatch, "yarn", [1], timeout_s=0.6)
    with pytest.raises(
        BackendError, match=r"needs num_workers=2 tasks running at once, but the cluster has only 1"
    ):
        backend._resolve_num_workers(object())
    assert len(looks) >= 2  # it looked again before giving up


def test_a_local_master_fails_at_once(monkeypatch):
    backend, looks = backend_on(monkeypatch, "local[1]", [1])
    with pytest.raises(BackendError, match="has only 1 task slots"):
        backend._resolve_num_workers(object())
    assert len(looks) == 1
