"""The Spark side of SparkBackend: one barrier stage of long-lived worker tasks, run from a driver thread.

Also the cluster facts that SparkBackend checks before launching it (how many tasks can run at once)
and the interpreter its Python workers use on a local master.
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import re
import sys
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cerebro_spark.backend import _executor_loop

if TYPE_CHECKING:
    from pyspark import RDD, SparkContext

logger = logging.getLogger(__name__)

_MAX_ERROR_CHARS = 8000
_LOCAL_CLUSTER = re.compile(r"local-cluster\[\s*(\d+)\s*,\s*(\d+)\s*,\s*\d+\s*\]")
_JVM_FRAME = re.compile(r"^\s+(at |\.\.\. \d+ more)")


@dataclass(frozen=True, slots=True)
class JobEnded:
    """The barrier job returned or failed (``error`` is Spark's message, without JVM stack frames)."""

    error: str | None


def run_worker(
    address: tuple[str, int], secret: bytes, num_workers: int, heartbeat_s: float, _rows: Iterable[int]
) -> Iterator[int]:
    """The barrier task: serve the driver as worker ``partitionId()`` (runs on an executor), with the
    task's cores and the GPUs Spark assigned to it."""
    from pyspark import BarrierTaskContext

    ctx = BarrierTaskContext.get()
    worker_id = ctx.partitionId()
    gpu = ctx.resources().get("gpu")
    gpus = tuple(gpu.addresses) if gpu is not None else ()
    _executor_loop.serve(address, secret, worker_id, num_workers, max(1, int(ctx.cpus())), heartbeat_s, gpus)
    return iter([worker_id])


class BarrierJob:
    """Launch ``num_workers`` :func:`run_worker` tasks as one barrier stage in a background thread.

    The stage runs under a job group of its own (``group``); :class:`JobEnded` goes to ``events``
    when it returns or fails.
    """

    def __init__(
        self,
        sc: SparkContext,
        num_workers: int,
        address: tuple[str, int],
        secret: bytes,
        heartbeat_s: float,
        events: queue.Queue[object],
        description: str | None = None,
    ) -> None:
        self._sc = sc
        self.group = f"cerebro_spark-{uuid.uuid4().hex[:12]}"
        self.error: str | None = None
        fn = functools.partial(run_worker, address, secret, num_workers, heartbeat_s)
        with driver_python_on_local_master(sc):
            rdd = sc.parallelize(range(num_workers), num_workers).barrier().mapPartitions(fn)
            rdd._jrdd  # noqa: B018 -- build the Python function now, with the interpreter chosen above
        description = description or f"cerebro_spark: {num_workers} model-hopper workers"
        self._thread = threading.Thread(
            target=self._run, args=(rdd, description, events), name="cerebro-spark-job", daemon=True
        )
        self._thread.start()

    def _run(self, rdd: RDD[int], description: str, events: queue.Queue[object]) -> None:
        try:
            self._sc.setJobGroup(self.group, description, interruptOnCancel=True)
            rdd.collect()
        except Exception as exc:
            lines = [line for line in str(exc).strip().splitlines() if not _JVM_FRAME.match(line)]
            error = "\n".join(lines)
            self.error = error if len(error) <= _MAX_ERROR_CHARS else error[:_MAX_ERROR_CHARS] + " [...]"
        events.put(JobEnded(self.error))

    def join(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the job to end."""
        self._thread.join(timeout=timeout)

    def stop(self, grace_s: float, cancel_wait_s: float) -> None:
        """Wait ``grace_s`` seconds for the job to end by itself, then cancel its job group.

        The cancellation also happens if the wait is interrupted (KeyboardInterrupt).
        """
        try:
            self._thread.join(timeout=grace_s)
        finally:
            if self._thread.is_alive():
                logger.warning(
                    "cancelling Spark job group %s (its workers did not stop within %.0f s)",
                    self.group,
                    grace_s,
                )
                try:
                    self._sc.cancelJobGroup(self.group)
                except Exception:
                    logger.warning("cancelling Spark job group %s failed", self.group, exc_info=True)
                self._thread.join(timeout=cancel_wait_s)
                if self._thread.is_alive():
                    logger.error("the Spark job of group %s is still running after cancellation", self.group)
        drain_listener_bus(self._sc)


def drain_listener_bus(sc: SparkContext) -> None:
    """Let Spark's status tracker catch up, so that an ended job no longer shows as active."""
    try:
        sc._jsc.sc().listenerBus().waitUntilEmpty(10_000)
    except Exception:
        logger.debug("could not wait for Spark's listener bus", exc_info=True)


def master(sc: SparkContext) -> str:
    """The master URL (``local[2]``, ``spark://...``)."""
    return str(sc.master or "")


def task_slots(sc: SparkContext) -> tuple[int, str]:
    """How many tasks the cluster can run at once, and how that was found."""
    task_cpus = max(1, int(sc.getConf().get("spark.task.cpus") or "1"))
    match = _LOCAL_CLUSTER.fullmatch(master(sc))
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


@contextmanager
def driver_python_on_local_master(sc: SparkContext) -> Iterator[None]:
    """On a local master, make the workers run this very interpreter (the one with TensorFlow)."""
    configured = sc.pythonExec
    if not master(sc).startswith("local") or os.path.abspath(configured) == os.path.abspath(sys.executable):
        yield
        return
    logger.info(
        "Spark's Python workers would run %r (PYSPARK_PYTHON); on local master %s the cerebro_spark "
        "workers run this interpreter instead: %s",
        configured, sc.master, sys.executable,
    )  # fmt: skip
    sc.pythonExec = sys.executable
    try:
        yield
    finally:
        sc.pythonExec = configured
