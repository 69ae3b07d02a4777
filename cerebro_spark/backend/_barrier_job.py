"""The Spark side of SparkBackend: one barrier stage of long-lived worker tasks, run from a driver thread.

The stage is launched through a :mod:`~cerebro_spark.backend.session` handle: an RDD barrier job on a
classic session, ``mapInArrow(..., barrier=True)`` on a Spark Connect one.
"""

from __future__ import annotations

import functools
import logging
import queue
import re
import threading
import uuid
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from cerebro_spark.backend import _executor_loop
from cerebro_spark.backend.remote import JobEnded

if TYPE_CHECKING:
    from cerebro_spark.backend.session import ClassicSpark, ConnectSpark

logger = logging.getLogger(__name__)

_MAX_ERROR_CHARS = 8000
_JVM_FRAME = re.compile(r"^\s+(at |\.\.\. \d+ more)")

#: How long a worker of a Spark Connect client's search tries to reach the client: the client may sit
#: behind a network the cluster cannot reach (a laptop), which only a quick, clear failure tells.
CONNECT_CLIENT_TIMEOUT_S = 10.0

CONNECT_CLIENT_HINT = (
    "The search runs in a Spark Connect client, whose control server the executors must reach: run it on "
    "a machine the cluster can reach (a notebook attached to the cluster, its driver, spark-submit), or "
    "pass SparkBackend(bind_address=...) an address of this machine that the executors can reach."
)


def run_worker(
    address: tuple[str, int],
    secret: bytes,
    num_workers: int,
    heartbeat_s: float,
    connect_timeout_s: float | None,
    warm_up: str | None,
    _rows: Iterable[int],
) -> Iterator[int]:
    """The barrier task: serve the driver as worker ``partitionId()`` (runs on an executor), with the
    task's cores and the GPUs Spark assigned to it."""
    from pyspark import BarrierTaskContext

    ctx = BarrierTaskContext.get()
    worker_id = ctx.partitionId()
    gpu = ctx.resources().get("gpu")
    gpus = tuple(gpu.addresses) if gpu is not None else ()
    _executor_loop.serve(
        address,
        secret,
        worker_id,
        num_workers,
        max(1, int(ctx.cpus())),
        heartbeat_s,
        gpus,
        connect_timeout_s=connect_timeout_s,
        connect_hint=CONNECT_CLIENT_HINT if connect_timeout_s is not None else None,
        warm_up=warm_up,
    )
    return iter([worker_id])


class BarrierJob:
    """Launch ``num_workers`` :func:`run_worker` tasks as one barrier stage in a background thread.

    The stage runs under a job group (classic) or operation tag (Spark Connect) of its own
    (``group``); :class:`JobEnded` goes to ``events`` when it returns or fails.
    """

    def __init__(
        self,
        spark: ClassicSpark | ConnectSpark,
        num_workers: int,
        address: tuple[str, int],
        secret: bytes,
        heartbeat_s: float,
        events: queue.Queue[object],
        description: str | None = None,
        warm_up: str | None = None,
    ) -> None:
        self._spark = spark
        self.group = f"cerebro_spark-{uuid.uuid4().hex[:12]}"
        self.error: str | None = None
        timeout = CONNECT_CLIENT_TIMEOUT_S if spark.is_connect else None
        fn = functools.partial(run_worker, address, secret, num_workers, heartbeat_s, timeout, warm_up)
        description = description or f"cerebro_spark: {num_workers} model-hopper workers"
        self._thread = threading.Thread(
            target=self._run,
            args=(num_workers, fn, description, events),
            name="cerebro-spark-job",
            daemon=True,
        )
        self._thread.start()

    def _run(
        self,
        num_workers: int,
        fn: functools.partial[Iterator[int]],
        description: str,
        events: queue.Queue[object],
    ) -> None:
        try:
            self._spark.run_barrier(num_workers, fn, self.group, description)
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
                    self._spark.cancel_barrier(self.group)
                except Exception:
                    logger.warning("cancelling Spark job group %s failed", self.group, exc_info=True)
                self._thread.join(timeout=cancel_wait_s)
                if self._thread.is_alive():
                    logger.error("the Spark job of group %s is still running after cancellation", self.group)
        self._spark.drain_events()
