"""SparkWork: the data preparation's thread beside the model builds (see cerebro_spark.ml._background)."""

from __future__ import annotations

import time

import pytest

from cerebro_spark.backend.session import spark_handle
from cerebro_spark.ml._background import SparkWork

pytestmark = pytest.mark.spark


def test_result_is_the_value_and_jobs_carry_the_callers_properties(spark):
    sc = spark.sparkContext
    sc.setLocalProperty("spark.scheduler.pool", "cerebro-test-pool")
    try:
        work = SparkWork(lambda: (sc.getLocalProperty("spark.scheduler.pool"), set(sc.getJobTags()),
                                  spark.range(10).count()), spark_handle(spark), "test")  # fmt: skip
        pool, tags, count = work.result()
    finally:
        sc.setLocalProperty("spark.scheduler.pool", None)
    assert (pool, count) == ("cerebro-test-pool", 10)
    assert len(tags) == 1 and next(iter(tags)).startswith("cerebro-test-")
    assert set(sc.getJobTags()) == set()  # the caller's thread carries no tag


def test_result_raises_what_the_work_raised(spark):
    def fail():
        raise ValueError("bad column")

    with pytest.raises(ValueError, match="bad column"):
        SparkWork(fail, spark_handle(spark), "test").result()


def test_cancel_stops_a_running_job(spark):
    sc = spark.sparkContext

    def wait_a_long_time(x: int) -> int:  # pickled by value: the executors do not import this module
        time.sleep(600)  # a task only cancelling ends within the test's time
        return x

    work = SparkWork(
        lambda: sc.parallelize(range(2), 2).map(wait_a_long_time).collect(), spark_handle(spark), "test"
    )
    work.cancel()  # the job may not have started yet: cancel repeats until the thread ends
    assert sc.statusTracker().getActiveJobsIds() == []
    with pytest.raises(Exception, match="cancel"):
        work.result()


def test_without_spark_it_is_a_plain_thread():
    assert SparkWork(lambda: 42, None, "test").result() == 42
