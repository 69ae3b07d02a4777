"""Fixtures shared by the whole suite.

One SparkSession for the whole run (``spark``), created on first use only, so that the pure unit
tests under ``tests/unit`` never start a JVM. Set ``CEREBRO_TEST_MASTER`` to run the Spark tests on
another master, e.g. ``local-cluster[2,1,1024]``.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys

import pytest

#: The stack a run is tested on, printed in pytest's header: ``make test`` and ``make test-petastorm``
#: run on different ones (see docs/petastorm.md).
STACK = ("pyspark", "pyarrow", "numpy", "pandas", "tensorflow", "keras", "petastorm")


def pytest_configure(config):
    # Spark 3.5 (the Petastorm environment) still compares versions with distutils' LooseVersion.
    config.addinivalue_line(
        "filterwarnings", "ignore:distutils Version classes are deprecated:DeprecationWarning"
    )


def pytest_report_header(config):
    """One header line with the versions of the stack under test (without importing any of it)."""
    return _stack_line()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """With ``-q`` pytest shows no header: the stack line then comes with the summary."""
    if config.get_verbosity() < 0:
        terminalreporter.write_line(_stack_line())


def _stack_line():
    versions = []
    for name in STACK:
        found = None
        for dist in (name, f"{name}-cpu") if name == "tensorflow" else (name,):
            try:
                found = importlib.metadata.version(dist)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
        versions.append(f"{name} {found or 'not installed'}")
    return "stack: " + ", ".join(versions)


@pytest.fixture(scope="session")
def spark():
    """A real local SparkSession: ``local[2]`` by default."""
    # Workers must run this interpreter (the one with TensorFlow), and on the loopback address.
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    master = os.environ.get("CEREBRO_TEST_MASTER", "local[2]")
    session = (
        SparkSession.builder.master(master)
        .appName("cerebro-spark-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.driver.memory", "1g")
        .config("spark.executor.memory", "1g")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture
def store(tmp_path):
    """A fresh local Store under pytest's temporary folder."""
    from cerebro_spark.store.base import Store

    return Store.create(str(tmp_path / "store"))


@pytest.fixture
def count_jobs(spark):
    """``count_jobs(fn)``: how many Spark jobs ``fn()`` started.

    Spark records jobs through its listener bus, asynchronously; draining the bus (a blocking JVM
    call) before reading the job group's jobs makes the count exact.
    """
    import uuid

    sc = spark.sparkContext

    def count(fn):
        group = f"test-{uuid.uuid4().hex}"
        sc.setJobGroup(group, "cerebro tests: counting jobs")
        try:
            fn()
        finally:
            for key in ("spark.jobGroup.id", "spark.job.description", "spark.job.interruptOnCancel"):
                sc.setLocalProperty(key, None)
        sc._jsc.sc().listenerBus().waitUntilEmpty(30_000)
        return len(sc.statusTracker().getJobIdsForGroup(group))

    return count


@pytest.fixture
def job_descriptions(spark):
    """``job_descriptions()``: the descriptions of every Spark job so far, as the Spark UI lists them."""
    jvm_context = spark.sparkContext._jsc.sc()

    def descriptions():
        jvm_context.listenerBus().waitUntilEmpty(30_000)
        jobs = jvm_context.statusStore().jobsList(None)
        options = [jobs.apply(i).description() for i in range(jobs.size())]
        return {option.get() for option in options if option.isDefined()}

    return descriptions
