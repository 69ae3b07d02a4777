"""SparkBackend waits for executors that are still registering on a cluster, and only there (no JVM:
the cluster's slot count is stood in for; the real case is tests/spark/test_standalone_cluster.py)."""

from __future__ import annotations

import pytest

from cerebro_spark.backend import spark as spark_backend
from cerebro_spark.errors import BackendError, InvalidParamError


class StandInCluster:
    """What SparkBackend asks of a session's Spark: the master and the task slots, one count per look
    (the last repeats)."""

    def __init__(self, master: str, slot_counts: list[int], is_connect: bool = False) -> None:
        self.master, self.slot_counts, self.is_connect = master, slot_counts, is_connect
        self.looks = 0
        self.key = id(self)  # the application, for the slots running backends hold

    @property
    def default_parallelism(self) -> int:
        return self.slot_counts[-1]

    def task_slots(self) -> tuple[int, str]:
        self.looks += 1
        return self.slot_counts[min(self.looks, len(self.slot_counts)) - 1], "stand-in"


def test_executors_registering_on_a_cluster_are_waited_for(caplog):
    cluster = StandInCluster("spark://host:7077", [0, 1, 2])
    assert spark_backend.SparkBackend(num_workers=2, start_timeout_s=5.0)._workers_of(cluster) == 2
    assert cluster.looks == 3
    assert "waiting up to 5 s (start_timeout_s) for executors: 0 of the 2 task slots" in caplog.text


def test_a_cluster_that_stays_too_small_fails_after_start_timeout():
    cluster = StandInCluster("yarn", [1])
    with pytest.raises(
        BackendError, match=r"needs num_workers=2 tasks running at once, but the cluster has only 1"
    ):
        spark_backend.SparkBackend(num_workers=2, start_timeout_s=0.6)._workers_of(cluster)
    assert cluster.looks >= 2  # it looked again before giving up


def test_a_local_master_fails_at_once():
    cluster = StandInCluster("local[1]", [1])
    with pytest.raises(BackendError, match="has only 1 task slots"):
        spark_backend.SparkBackend(num_workers=2)._workers_of(cluster)
    assert cluster.looks == 1


def test_spark_connect_without_slot_counts_trusts_num_workers_and_asks_for_it():
    cluster = StandInCluster("yarn", [0], is_connect=True)  # a session that does not tell the slots
    assert spark_backend.SparkBackend(num_workers=3)._workers_of(cluster) == 3
    with pytest.raises(InvalidParamError, match=r"cannot tell how many tasks .* Pass num_workers="):
        spark_backend.SparkBackend()._workers_of(cluster)
