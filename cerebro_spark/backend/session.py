"""What the backend and the preparation need from Spark, from a classic session or a Spark Connect one.

A classic session has a SparkContext on the driver: the barrier stage is an RDD job under a job group,
the master and task slots come from the context, jobs are tagged through it. A Spark Connect session
(``SparkSession.builder.remote(...)``; Databricks' shared and serverless compute) has no SparkContext:
the barrier stage is ``DataFrame.mapInArrow(..., barrier=True)``, the master and slots come from the
session's conf, and operations are tagged and interrupted through the session. :func:`spark_handle`
gives the one or the other behind the same methods.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

_LOCAL = re.compile(r"local(?:\[\s*(\d+|\*)\s*(?:,\s*\d+\s*)?\])?")
_LOCAL_CLUSTER = re.compile(r"local-cluster\[\s*(\d+)\s*,\s*(\d+)\s*,\s*\d+\s*\]")


def is_connect(spark: Any) -> bool:
    """Whether ``spark`` is a Spark Connect session (no SparkContext, no JVM in this process)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def spark_handle(spark: SparkSession) -> ClassicSpark | ConnectSpark:
    """The session's :class:`ClassicSpark` or :class:`ConnectSpark`."""
    return ConnectSpark(spark) if is_connect(spark) else ClassicSpark(spark.sparkContext)


class ClassicSpark:
    """A classic session: its SparkContext does it all."""

    is_connect = False

    def __init__(self, sc: SparkContext) -> None:
        self.sc = sc

    @property
    def key(self) -> int:
        """Identifies the Spark application (for the slots held by running backends)."""
        return id(self.sc)

    @property
    def master(self) -> str:
        return str(self.sc.master or "")

    @property
    def default_parallelism(self) -> int:
        return int(self.sc.defaultParallelism)

    def driver_host(self) -> str | None:
        return self.sc.getConf().get("spark.driver.host")

    def task_slots(self) -> tuple[int, str]:
        """How many tasks the cluster can run at once, and how that was found."""
        sc = self.sc
        task_cpus = max(1, int(sc.getConf().get("spark.task.cpus") or "1"))
        match = _LOCAL_CLUSTER.fullmatch(self.master)
        if match:  # its executors may not have registered yet: trust the master URL
            workers, cores = int(match[1]), int(match[2])
            return workers * (cores // task_cpus), f"{sc.master} with spark.task.cpus={task_cpus}"
        try:
            jsc = sc._jsc.sc()
            slots = int(jsc.maxNumConcurrentTasks(jsc.resourceProfileManager().defaultResourceProfile()))
            return slots, f"master {sc.master} with spark.task.cpus={task_cpus}, executors registered now"
        except Exception:
            logger.debug("maxNumConcurrentTasks is not available; using defaultParallelism", exc_info=True)
            parallelism = sc.defaultParallelism
            return parallelism // task_cpus, f"defaultParallelism={parallelism} / spark.task.cpus={task_cpus}"

    @contextlib.contextmanager
    def driver_python(self) -> Iterator[None]:
        """On a local master, make Python functions created in the block run this very interpreter
        (the one with TensorFlow) on the workers."""
        sc = self.sc
        configured = sc.pythonExec
        if not self.master.startswith("local") or os.path.abspath(configured) == os.path.abspath(
            sys.executable
        ):
            yield
            return
        logger.info(
            "Spark's Python workers would run %r (PYSPARK_PYTHON); on local master %s the cerebro_spark "
            "workers run this interpreter instead: %s",
            configured,
            sc.master,
            sys.executable,
        )
        sc.pythonExec = sys.executable
        try:
            yield
        finally:
            sc.pythonExec = configured

    @contextlib.contextmanager
    def job_description(self, text: str) -> Iterator[None]:
        """Name the Spark jobs this thread starts in the block (the Spark UI's description column)."""
        previous = self.sc.getLocalProperty("spark.job.description")
        self.sc.setJobDescription(text)
        try:
            yield
        finally:
            self.sc.setLocalProperty("spark.job.description", previous)  # type: ignore[arg-type]  # None unsets

    def add_tag(self, tag: str) -> None:
        """Tag the jobs this thread starts from now on."""
        self.sc.addJobTag(tag)

    def remove_tag(self, tag: str) -> None:
        self.sc.removeJobTag(tag)

    def cancel_tag(self, tag: str) -> None:
        """Cancel the running jobs that carry ``tag``."""
        self.sc.cancelJobsWithTag(tag)

    def thread(self, target: Callable[[], None]) -> Any:
        """A thread that takes the caller's local properties (job group, description, pool) along."""
        from pyspark import InheritableThread

        return InheritableThread(target=target)

    def run_barrier(
        self, num_workers: int, fn: Callable[[Iterable[int]], Iterator[int]], tag: str, description: str
    ) -> None:
        """Run ``fn`` as ``num_workers`` tasks of one barrier stage, under job group ``tag``; blocks."""
        with self.driver_python():
            rdd = self.sc.parallelize(range(num_workers), num_workers).barrier().mapPartitions(fn)
            rdd._jrdd  # noqa: B018 -- build the Python function now, with the interpreter chosen above
        self.sc.setJobGroup(tag, description, interruptOnCancel=True)
        rdd.collect()

    def cancel_barrier(self, tag: str) -> None:
        self.sc.cancelJobGroup(tag)

    def drain_events(self) -> None:
        """Let Spark's status tracker catch up, so that an ended job no longer shows as active."""
        try:
            self.sc._jsc.sc().listenerBus().waitUntilEmpty(10_000)
        except Exception:
            logger.debug("could not wait for Spark's listener bus", exc_info=True)


class ConnectSpark:
    """A Spark Connect session: no SparkContext; the server runs the jobs, the session tags them."""

    is_connect = True

    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark

    @property
    def key(self) -> str:
        return f"connect:{self.spark.client.host}:{self._conf('spark.app.id') or id(self.spark)}"

    def _conf(self, key: str) -> str | None:
        try:
            return self.spark.conf.get(key, None)
        except Exception:  # a conf the server does not expose
            return None

    @property
    def master(self) -> str:
        return self._conf("spark.master") or ""

    @property
    def default_parallelism(self) -> int:
        """The task slots, 0 where the session does not tell them."""
        return self.task_slots()[0]

    def driver_host(self) -> str | None:
        """This client's address as the cluster sees it: the local end of a route to the server."""
        if self.master.startswith("local"):
            return "127.0.0.1"
        return _route_address(self.spark.client.host)

    def task_slots(self) -> tuple[int, str]:
        """Task slots from the master URL and the session's conf (no scheduler to ask from here)."""
        task_cpus = max(1, int(self._conf("spark.task.cpus") or "1"))
        master = self.master
        if match := _LOCAL_CLUSTER.fullmatch(master):
            return int(match[1]) * (int(match[2]) // task_cpus), f"{master} with spark.task.cpus={task_cpus}"
        if match := _LOCAL.fullmatch(master):
            n = match[1]
            local_cores = 1 if n is None else (os.cpu_count() or 1) if n == "*" else int(n)
            return local_cores // task_cpus, f"{master} with spark.task.cpus={task_cpus}"
        instances, cores = self._conf("spark.executor.instances"), self._conf("spark.executor.cores")
        if instances and cores:
            slots = int(instances) * (int(cores) // task_cpus)
            return (
                slots,
                f"spark.executor.instances={instances} x spark.executor.cores={cores} (Spark Connect)",
            )
        parallelism = self._conf("spark.default.parallelism")
        if parallelism:
            return int(parallelism) // task_cpus, f"spark.default.parallelism={parallelism} (Spark Connect)"
        return 0, f"master {master or 'unknown'}: Spark Connect does not tell the task slots"

    @contextlib.contextmanager
    def driver_python(self) -> Iterator[None]:
        yield  # the server chooses its Python workers' interpreter

    @contextlib.contextmanager
    def job_description(self, text: str) -> Iterator[None]:
        yield  # operations carry tags, not descriptions

    def add_tag(self, tag: str) -> None:
        self.spark.addTag(tag)

    def remove_tag(self, tag: str) -> None:
        self.spark.removeTag(tag)

    def cancel_tag(self, tag: str) -> None:
        self.spark.interruptTag(tag)

    def thread(self, target: Callable[[], None]) -> Any:
        import threading

        return threading.Thread(target=target)  # the session's tags are per thread: none to take along

    def run_barrier(
        self, num_workers: int, fn: Callable[[Iterable[int]], Iterator[int]], tag: str, description: str
    ) -> None:
        """``fn`` as ``num_workers`` barrier tasks of ``mapInArrow`` over one row each, tagged ``tag``."""
        rows = self.spark.range(0, num_workers, 1, num_workers)
        self.spark.addTag(tag)
        try:
            rows.mapInArrow(_ArrowTasks(fn), "worker long", barrier=True).collect()
        finally:
            self.spark.removeTag(tag)

    def cancel_barrier(self, tag: str) -> None:
        self.spark.interruptTag(tag)

    def drain_events(self) -> None:
        pass  # interruptTag returns once the server has interrupted the operation


class _ArrowTasks:
    """``mapInArrow``'s function around a barrier task function of row indices (pickled by value)."""

    def __init__(self, fn: Callable[[Iterable[int]], Iterator[int]]) -> None:
        self.fn = fn

    def __call__(self, batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        rows = [int(v) for batch in batches for v in batch.column(0).to_pylist()]
        done = list(self.fn(rows))
        yield pa.RecordBatch.from_pydict({"worker": pa.array(done, pa.int64())})


def _route_address(server_host: str) -> str | None:
    """The local address this machine uses to reach ``server_host`` (no packet is sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((server_host, 9))
            return str(probe.getsockname()[0])
    except OSError:
        return None
