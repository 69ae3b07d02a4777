"""SparkBackend: P long-lived workers in one Spark barrier stage, driven over an authenticated socket."""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import TYPE_CHECKING, Any

from cerebro_spark.backend._barrier_job import BarrierJob
from cerebro_spark.backend.base import DEFAULT_MAX_RESTARTS
from cerebro_spark.backend.remote import Launch, RemoteBackend
from cerebro_spark.backend.session import spark_handle
from cerebro_spark.errors import BackendError, InvalidParamError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from cerebro_spark.backend.session import ClassicSpark, ConnectSpark

    SparkHandle = ClassicSpark | ConnectSpark

logger = logging.getLogger(__name__)


class _SlotLedger:
    """Task slots held by the running SparkBackends of this process, per Spark application.

    Two searches of one Spark application (two threads) each hold a barrier stage for their whole
    run; a second one that cannot get its slots would wait for them without end, so it is refused.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[object, dict[int, int]] = {}  # application (handle.key) -> {id(backend): slots}

    def held_by_others(self, spark: SparkHandle, backend: object) -> int:
        with self._lock:
            return sum(n for b, n in self._held.get(spark.key, {}).items() if b != id(backend))

    def reserve(self, spark: SparkHandle, backend: object, n: int, slots: int, how: str) -> None:
        with self._lock:
            held = self._held.setdefault(spark.key, {})
            others = sum(k for b, k in held.items() if b != id(backend))
            if others + n > slots:
                raise BackendError(_busy_message(n, others, slots, how))
            held[id(backend)] = n

    def release(self, spark: SparkHandle | None, backend: object) -> None:
        with self._lock:
            if spark is not None:
                self._held.get(spark.key, {}).pop(id(backend), None)


_LEDGER = _SlotLedger()


def _busy_message(n: int, others: int, slots: int, how: str) -> str:
    return (
        f"SparkBackend needs num_workers={n} task slots at once, but another search running in this Spark "
        f"application holds {others} of the cluster's {slots} task slots ({how}). Its workers run until it "
        f"finishes. Wait for it, or pass num_workers <= {max(0, slots - others)}."
    )


class SparkBackend(RemoteBackend):
    """Run tasks on ``num_workers`` long-lived Python workers, one barrier-stage task each.

    :meth:`start` opens an authenticated TCP server on the driver and launches one barrier stage of
    ``num_workers`` tasks; each task connects back, proves it holds this run's secret, and then runs
    :class:`TaskRequest`s until :meth:`shutdown`. The stage runs in a background thread under its own
    job group, which shutdown cancels if the workers do not stop by themselves.

    Parameters
    ----------
    spark : SparkSession, optional
        The session to use; by default the active session (or a new one), looked up at start.
    num_workers : int, optional
        Number of workers (P); by default the cluster's ``defaultParallelism``. The barrier stage
        needs this many free task slots at once.
    start_timeout_s : float, default 300
        How long :meth:`start` waits for every worker to connect, and, on a cluster (not a local
        master), for executors to offer ``num_workers`` task slots: at an application's start, or
        after an executor was lost and is being replaced.
    heartbeat_s : float, default 5
        How often each worker sends a heartbeat (see :meth:`last_seen`).
    bind_address : str, optional
        Address of the driver that executors can reach. By default ``127.0.0.1`` on a local
        master, else ``spark.driver.host`` (never every interface unless asked for).
    worker_timeout_s : float or None, default 120
        A worker that sends nothing (not even a heartbeat) for this long is treated as lost, like a
        dead one. None: never (a hung worker would then be waited for without end).
    max_restarts : int, default 3
        How many times a search relaunches the workers (the whole barrier stage) after losing one;
        the units in flight are retried. One loss more and the search fails with a BackendError
        naming the worker and its last words.

    Examples
    --------
    >>> with SparkBackend(spark, num_workers=2) as backend:  # doctest: +SKIP
    ...     backend.submit(0, TaskRequest(1, "cerebro_spark.testing.tasks:echo", {"value": 1}))
    ...     backend.next_result(timeout=60).value
    1
    """

    _engine = "the Spark job"

    def __init__(
        self,
        spark: SparkSession | None = None,
        num_workers: int | None = None,
        *,
        start_timeout_s: float = 300.0,
        heartbeat_s: float = 5.0,
        bind_address: str | None = None,
        worker_timeout_s: float | None = 120.0,
        max_restarts: int = DEFAULT_MAX_RESTARTS,
    ) -> None:
        super().__init__(
            num_workers,
            start_timeout_s=start_timeout_s,
            heartbeat_s=heartbeat_s,
            bind_address=bind_address,
            worker_timeout_s=worker_timeout_s,
            max_restarts=max_restarts,
        )
        self._spark = spark
        self._cluster: SparkHandle | None = None

    def describe(self) -> str:
        """Master, number of workers and the control plane's address."""
        url = self._cluster.master if self._cluster is not None else "?"
        n = self._num_workers if self._num_workers is not None else self._requested_workers or "auto"
        address = "not started"
        if self._server is not None:
            host, port = self._server.address
            address = f"{host}:{port}"
        return f"SparkBackend(master={url}, num_workers={n}, address={address})"

    # -- what RemoteBackend asks of an engine --------------------------------------------------

    def _resolve_num_workers(self) -> int:
        cluster = self._cluster_of_session()
        self._cluster = cluster
        return self._workers_of(cluster)

    def _reserve(self, n: int) -> None:
        cluster = self._cluster or self._cluster_of_session()
        slots, how = self._task_slots(cluster, n)
        _LEDGER.reserve(cluster, self, n, slots, how)

    def _release(self) -> None:
        _LEDGER.release(self._cluster, self)

    def _launch(self, n: int, address: tuple[str, int], secret: bytes, events: queue.Queue[object]) -> Launch:
        return BarrierJob(
            self._cluster or self._cluster_of_session(),
            n,
            address,
            secret,
            self._heartbeat_s,
            events,
            description=self._description,
            warm_up=self._warm_up,
        )

    def _reach_hint(self, n: int) -> str:
        return (
            "Check that executors can reach the driver (bind_address) and that the cluster has "
            f"{n} free task slots."
        )

    def _on_stopped(self, job: Launch | None) -> None:
        group = job.group if isinstance(job, BarrierJob) else "none"
        logger.info("SparkBackend stopped (job group %s)", group)

    # -- start ---------------------------------------------------------------------------------

    def _cluster_of_session(self) -> SparkHandle:
        """The session's Spark, classic or Spark Connect (see :mod:`cerebro_spark.backend.session`)."""
        from pyspark.sql import SparkSession

        spark = self._spark or SparkSession.getActiveSession() or SparkSession.builder.getOrCreate()
        return spark_handle(spark)

    def _workers_of(self, cluster: SparkHandle) -> int:
        n: Any = (
            self._requested_workers if self._requested_workers is not None else cluster.default_parallelism
        )
        if n == 0 and self._requested_workers is None:  # a Spark Connect session that does not tell
            raise InvalidParamError(
                f"SparkBackend cannot tell how many tasks the cluster runs at once ({cluster.task_slots()[1]}). "
                "Pass num_workers= (one worker per task slot the search may hold)."
            )
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InvalidParamError(
                "SparkBackend's num_workers must be an int >= 1 (or None for the cluster's default "
                f"parallelism). Received: num_workers={n!r}"
            )
        slots, how = self._wait_for_slots(cluster, n)
        if slots == 0 and cluster.is_connect:  # Spark Connect does not tell: the barrier stage will
            logger.info("task slots unknown (%s): trusting num_workers=%d", how, n)
            slots = n
        if n > slots:
            raise BackendError(
                f"SparkBackend needs num_workers={n} tasks running at once, but the cluster has only {slots} "
                f"task slots ({how}). The workers run as one barrier stage, which waits until that many slots "
                f"are free at the same time. Pass num_workers <= {slots}, or give the cluster more cores."
            )
        others = _LEDGER.held_by_others(cluster, self)
        if others + n > slots:
            raise BackendError(_busy_message(n, others, slots, how))
        return n

    def _task_slots(self, cluster: SparkHandle, n: int) -> tuple[int, str]:
        slots, how = cluster.task_slots()
        return (n, how) if slots == 0 and cluster.is_connect else (slots, how)

    def _wait_for_slots(self, cluster: SparkHandle, n: int) -> tuple[int, str]:
        """The cluster's task slots, once there are ``n`` (or when ``start_timeout_s`` has passed).

        On a cluster, executors register some seconds after the application starts, and an executor
        that was lost (its JVM killed, its machine gone) is replaced some seconds later: wait for them.
        A local master's slots are fixed: no wait.
        """
        slots, how = cluster.task_slots()
        if slots >= n or cluster.master.startswith("local") or cluster.is_connect:
            return slots, how
        logger.warning(
            "waiting up to %.0f s (start_timeout_s) for executors: %d of the %d task slots the workers need "
            "are up (%s)",
            self._start_timeout_s,
            slots,
            n,
            how,
        )
        deadline = time.monotonic() + self._start_timeout_s
        while slots < n and time.monotonic() < deadline:
            time.sleep(0.5)  # executors register with the driver's scheduler, which has no callback here
            slots, how = cluster.task_slots()
        return slots, how

    def _bind_host(self) -> str:
        cluster = self._cluster or self._cluster_of_session()
        if self._bind_address:
            return self._bind_address
        if cluster.master.startswith("local"):
            return "127.0.0.1"
        return cluster.driver_host() or "127.0.0.1"

    def _worker_address(self, bound: tuple[str, int]) -> tuple[str, int]:
        host, port = bound
        if host in ("0.0.0.0", "::", "") and self._cluster is not None:  # every interface: the driver's host
            host = self._cluster.driver_host() or "127.0.0.1"
        return super()._worker_address((host, port))
