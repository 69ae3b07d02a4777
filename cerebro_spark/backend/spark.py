"""SparkBackend: P long-lived workers in one Spark barrier stage, driven over an authenticated socket."""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import TYPE_CHECKING, Any

from cerebro_spark.backend._barrier_job import BarrierJob, JobEnded
from cerebro_spark.backend._control_server import ControlServer, WorkerLost, WorkerReady
from cerebro_spark.backend.base import (
    DEFAULT_MAX_RESTARTS,
    Backend,
    TaskRequest,
    TaskResult,
    WorkerLostError,
    check_max_restarts,
)
from cerebro_spark.backend.protocol import Shutdown, new_secret
from cerebro_spark.backend.session import spark_handle
from cerebro_spark.errors import BackendError, InvalidParamError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from cerebro_spark.backend.session import ClassicSpark, ConnectSpark

    SparkHandle = ClassicSpark | ConnectSpark

logger = logging.getLogger(__name__)

SHUTDOWN_WAIT_S = 30.0
"""How long shutdown() waits for the workers to return before it cancels the Spark job group."""

_LOST_WORKER_GRACE_S = 5.0  # how long to wait for Spark's own error after a worker's connection drops
_LOG_TAIL_CHARS = 3000


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


class SparkBackend(Backend):
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
        if worker_timeout_s is not None and (
            isinstance(worker_timeout_s, bool)
            or not isinstance(worker_timeout_s, (int, float))
            or not worker_timeout_s > heartbeat_s
        ):
            raise InvalidParamError(
                "SparkBackend's worker_timeout_s must be None or a number of seconds larger than "
                f"heartbeat_s={heartbeat_s!r}. Received: worker_timeout_s={worker_timeout_s!r}"
            )
        self._worker_timeout_s = worker_timeout_s
        self._max_restarts = check_max_restarts(max_restarts, "SparkBackend")
        self._spark = spark
        self._requested_workers = num_workers
        self._start_timeout_s = start_timeout_s
        self._heartbeat_s = heartbeat_s
        self._bind_address = bind_address
        self._num_workers: int | None = None
        self._cluster: SparkHandle | None = None
        self._server: ControlServer | None = None
        self._job: BarrierJob | None = None
        self._events: queue.Queue[object] = queue.Queue()
        self._failure: WorkerLostError | None = None
        self._lifecycle = threading.RLock()
        self._description: str | None = None
        self._warm_up: str | None = None

    @property
    def is_running(self) -> bool:
        """Whether :meth:`start` launched the workers and no :meth:`shutdown` has stopped them."""
        return self._server is not None

    def set_warm_up(self, task: str | None) -> None:
        """What each worker runs in a thread of its own once connected, for the next :meth:`start`
        (see :meth:`Backend.set_warm_up <cerebro_spark.backend.base.Backend.set_warm_up>`)."""
        self._warm_up = task

    def set_description(self, text: str) -> None:
        """The Spark UI's description of the barrier job the next :meth:`start` launches."""
        self._description = text

    @property
    def num_workers(self) -> int:
        """Number of workers (P). Before :meth:`start` it is resolved (and checked against the
        cluster's task slots) from the session, so callers can size the data first."""
        if self._num_workers is not None:
            return self._num_workers
        return self._resolve_num_workers(self._cluster_of_session())

    def start(self) -> None:
        """Launch the workers; return once all of them are connected and authenticated.

        Raises
        ------
        InvalidParamError
            If ``num_workers`` is not an int >= 1.
        BackendError
            If the cluster cannot run ``num_workers`` tasks at once, the Spark job fails, or not
            every worker connects within ``start_timeout_s``.
        """
        with self._lifecycle:
            if self._server is not None:
                raise BackendError(
                    "SparkBackend is already started: call shutdown() before starting it again."
                )
            cluster = self._cluster_of_session()
            n = self._resolve_num_workers(cluster)
            slots, how = self._task_slots(cluster, n)
            _LEDGER.reserve(cluster, self, n, slots, how)
            try:
                self._cluster, self._num_workers, self._failure = cluster, n, None
                self._events = queue.Queue()
                secret = new_secret()
                self._server = self._listen(self._bind_host(cluster), secret, n)
                address = self._worker_address(cluster, self._server.address)
                self._job = BarrierJob(
                    cluster,
                    n,
                    address,
                    secret,
                    self._heartbeat_s,
                    self._events,
                    description=self._description,
                    warm_up=self._warm_up,
                )
                self._await_workers(n)
            except BaseException:
                self._stop(grace_s=0.0)
                raise
        logger.info("%s started", self.describe())

    def submit(self, worker_id: int, request: TaskRequest) -> None:
        """Send ``request`` to worker ``worker_id`` (it queues behind the worker's current task)."""
        server = self._running_server()
        if (
            isinstance(worker_id, bool)
            or not isinstance(worker_id, int)
            or not 0 <= worker_id < self.num_workers
        ):
            raise InvalidParamError(
                f"worker_id must be an int in [0, {self.num_workers - 1}]. Received: worker_id={worker_id!r}"
            )
        if not isinstance(request, TaskRequest):
            raise InvalidParamError(f"request must be a TaskRequest. Received: {type(request).__name__}")
        if self._failure is not None:
            raise self._failure
        try:
            server.send(worker_id, request)
        except BackendError as exc:  # its connection just broke: next_result reports the lost worker
            logger.warning("could not send task %d to worker %d: %s", request.task_id, worker_id, exc)

    def next_result(self, timeout: float | None = None) -> TaskResult | None:
        """Block until a worker finishes a task; ``None`` after ``timeout`` seconds.

        Raises WorkerLostError, naming the worker and Spark's error, once a worker dies, hangs
        (``worker_timeout_s``) or the job is lost; it sticks until :meth:`restart`.
        """
        self._running_server()
        if self._failure is not None:
            raise self._failure
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                event = self._events.get(timeout=remaining)
            except queue.Empty:
                return None
            if isinstance(event, TaskResult):
                return event
            if isinstance(event, (WorkerLost, JobEnded)):
                self._failure = self._lost(event)
                logger.error("%s", self._failure)
                raise self._failure

    def mark_lost(self, error: WorkerLostError) -> None:
        """A worker was found hung by the driver: the next shutdown cancels the job at once."""
        if self._failure is None:
            self._failure = error

    def last_seen(self, worker_id: int) -> float | None:
        """Driver's ``time.monotonic()`` when ``worker_id`` last sent anything (heartbeats included)."""
        server = self._server
        return None if server is None else server.last_seen(worker_id)

    def shutdown(self) -> None:
        """Stop the workers, the Spark job, the server and every thread. Idempotent.

        After a lost worker the job is cancelled at once (a hung worker would not stop by itself)."""
        with self._lifecycle:
            self._stop(grace_s=0.0 if self._failure is not None else SHUTDOWN_WAIT_S)

    def describe(self) -> str:
        """Master, number of workers and the control plane's address."""
        url = self._cluster.master if self._cluster is not None else "?"
        n = self._num_workers if self._num_workers is not None else self._requested_workers or "auto"
        address = "not started"
        if self._server is not None:
            host, port = self._server.address
            address = f"{host}:{port}"
        return f"SparkBackend(master={url}, num_workers={n}, address={address})"

    # -- start ---------------------------------------------------------------------------------

    def _cluster_of_session(self) -> SparkHandle:
        """The session's Spark, classic or Spark Connect (see :mod:`cerebro_spark.backend.session`)."""
        from pyspark.sql import SparkSession

        spark = self._spark or SparkSession.getActiveSession() or SparkSession.builder.getOrCreate()
        return spark_handle(spark)

    def _resolve_num_workers(self, cluster: SparkHandle) -> int:
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

    def _bind_host(self, cluster: SparkHandle) -> str:
        if self._bind_address:
            return self._bind_address
        if cluster.master.startswith("local"):
            return "127.0.0.1"
        return cluster.driver_host() or "127.0.0.1"

    def _listen(self, host: str, secret: bytes, n: int) -> ControlServer:
        try:
            return ControlServer(host, secret, n, self._events, worker_timeout_s=self._worker_timeout_s)
        except OSError as exc:
            raise BackendError(
                f"SparkBackend cannot listen on {host!r}: {exc}. Pass bind_address= an address of this "
                "machine that the executors can reach."
            ) from exc

    @staticmethod
    def _worker_address(cluster: SparkHandle, bound: tuple[str, int]) -> tuple[str, int]:
        host, port = bound
        if host in ("0.0.0.0", "::", ""):  # bound to every interface: tell workers the driver's host
            host = cluster.driver_host() or "127.0.0.1"
        return host, port

    def _await_workers(self, n: int) -> None:
        deadline = time.monotonic() + self._start_timeout_s
        ready: set[int] = set()
        while len(ready) < n:
            try:
                event = self._events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise BackendError(
                    f"Only {len(ready)} of {n} workers connected within start_timeout_s={self._start_timeout_s:g} s. "
                    "Check that executors can reach the driver (bind_address) and that the cluster has "
                    f"{n} free task slots."
                ) from None
            if isinstance(event, WorkerReady):
                ready.add(event.hello.worker_id)
            elif isinstance(event, (WorkerLost, JobEnded)):
                raise BackendError(
                    f"SparkBackend could not start: {len(ready)} of {n} workers connected, then "
                    + self._failure_message(event)
                )

    # -- failures and shutdown -----------------------------------------------------------------

    def _running_server(self) -> ControlServer:
        if self._server is None:
            raise BackendError(
                "SparkBackend is not running: call start() (or use it as a context manager) first."
            )
        return self._server

    def _lost(self, event: WorkerLost | JobEnded) -> WorkerLostError:
        message = self._failure_message(event)
        job = self._job
        tail = (job.error or "") if job is not None else ""
        if isinstance(event, JobEnded):
            return WorkerLostError(
                message, worker_id=-1, reason="the Spark job ended", log_tail=tail[-_LOG_TAIL_CHARS:]
            )
        return WorkerLostError(
            message, worker_id=event.worker_id, reason=event.reason, log_tail=tail[-_LOG_TAIL_CHARS:]
        )

    def _failure_message(self, event: WorkerLost | JobEnded) -> str:
        if isinstance(event, JobEnded):
            why = event.error or "every task returned, as if the driver had closed the connections"
            return f"the Spark job running the workers ended unexpectedly: {why}"
        job = self._job
        if job is not None and not event.reason.startswith("no heartbeat"):
            job.join(timeout=_LOST_WORKER_GRACE_S)  # Spark's error usually follows the dropped connection
        spark_error = f" The Spark job failed: {job.error}" if job is not None and job.error else ""
        return f"Worker {event.worker_id} was lost ({event.reason}).{spark_error}"

    def _stop(self, grace_s: float) -> None:
        server, job = self._server, self._job
        try:
            if server is not None:
                if server.num_connected == 0:
                    grace_s = 0.0  # nobody to tell: cancel the stage at once
                server.stop_workers(Shutdown())
            if job is not None:
                job.stop(grace_s, cancel_wait_s=SHUTDOWN_WAIT_S)
        finally:
            if server is not None:
                server.close()
            _LEDGER.release(self._cluster, self)
            self._server, self._job = None, None
            if server is not None or job is not None:
                logger.info("SparkBackend stopped (job group %s)", job.group if job else "none")
