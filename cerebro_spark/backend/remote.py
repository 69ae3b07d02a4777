"""RemoteBackend: P workers in other processes that dial back to an authenticated control server.

What every engine shares: the driver listens (:class:`~cerebro_spark.backend._control_server.ControlServer`),
the workers connect, prove they hold the run's secret and say Hello, then run
:class:`~cerebro_spark.backend.base.TaskRequest`s until Shutdown
(:func:`~cerebro_spark.backend._executor_loop.serve`). A subclass says only how the workers are
launched and how many there are: one Spark barrier stage (``SparkBackend``), one pinned task per Dask
worker (``DaskBackend``), one Ray actor each (``RayBackend``), or processes started by hand
(``StandaloneBackend``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

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
from cerebro_spark.errors import BackendError, InvalidParamError

logger = logging.getLogger(__name__)

SHUTDOWN_WAIT_S = 30.0
"""How long shutdown() waits for the workers to return before it cancels what holds them."""

_LOST_WORKER_GRACE_S = 5.0  # how long to wait for the engine's own error after a worker's connection drops
_LOG_TAIL_CHARS = 3000


@dataclass(frozen=True, slots=True)
class JobEnded:
    """What holds the workers (a Spark job, Dask tasks, Ray actors) returned or failed (``error``: the
    engine's message)."""

    error: str | None


class Launch(Protocol):
    """The workers of one start, as an engine holds them."""

    #: The engine's error once they ended badly (a Spark job's failure, a Dask task's exception).
    error: str | None

    def join(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the workers to end."""

    def stop(self, grace_s: float, cancel_wait_s: float) -> None:
        """Wait ``grace_s`` seconds for the workers to end by themselves, then cancel them."""


class RemoteBackend(Backend):
    """The workers of a subclass's engine, driven over the authenticated control plane.

    A subclass implements :meth:`_launch` (start ``n`` workers that call
    :func:`~cerebro_spark.backend._executor_loop.serve`; post :class:`JobEnded` to ``events`` when they
    end), :meth:`_resolve_num_workers` and :meth:`_bind_host`, and may override :meth:`_reserve` and
    :meth:`_release` (the engine's resources), :meth:`_secret`, :attr:`_port` and the texts of its
    messages (:attr:`_engine`, :meth:`_reach_hint`).

    Parameters
    ----------
    num_workers : int, optional
        Number of workers (P); None: the subclass decides (the engine's slots, its workers).
    start_timeout_s : float
        How long :meth:`start` waits for every worker to connect.
    heartbeat_s : float
        How often each worker sends a heartbeat.
    bind_address : str, optional
        The address the control server listens on, which the workers must reach.
    worker_timeout_s : float or None
        A worker silent for this long is lost, like a dead one. None: never.
    max_restarts : int
        How many times a search relaunches the workers after losing one.
    """

    #: The engine's name in messages ("the Spark job", "the Dask tasks"...).
    _engine = "the job"
    #: The port the control server listens on (0: any free one).
    _port = 0

    def __init__(
        self,
        num_workers: int | None = None,
        *,
        start_timeout_s: float = 300.0,
        heartbeat_s: float = 5.0,
        bind_address: str | None = None,
        worker_timeout_s: float | None = 120.0,
        max_restarts: int = DEFAULT_MAX_RESTARTS,
    ) -> None:
        name = type(self).__name__
        if worker_timeout_s is not None and (
            isinstance(worker_timeout_s, bool)
            or not isinstance(worker_timeout_s, (int, float))
            or not worker_timeout_s > heartbeat_s
        ):
            raise InvalidParamError(
                f"{name}'s worker_timeout_s must be None or a number of seconds larger than "
                f"heartbeat_s={heartbeat_s!r}. Received: worker_timeout_s={worker_timeout_s!r}"
            )
        self._worker_timeout_s = worker_timeout_s
        self._max_restarts = check_max_restarts(max_restarts, name)
        self._requested_workers = num_workers
        self._start_timeout_s = start_timeout_s
        self._heartbeat_s = heartbeat_s
        self._bind_address = bind_address
        self._num_workers: int | None = None
        self._server: ControlServer | None = None
        self._job: Launch | None = None
        self._events: queue.Queue[object] = queue.Queue()
        self._failure: WorkerLostError | None = None
        self._lifecycle = threading.RLock()
        self._description: str | None = None
        self._warm_up: str | None = None

    # -- what a subclass provides ------------------------------------------------------------------

    @abstractmethod
    def _resolve_num_workers(self) -> int:
        """P, checked against what the engine can hold at once (raises InvalidParamError or BackendError)."""

    @abstractmethod
    def _bind_host(self) -> str:
        """The address the control server listens on."""

    @abstractmethod
    def _launch(
        self, n: int, address: tuple[str, int], secret: bytes, events: queue.Queue[object]
    ) -> Launch | None:
        """Start ``n`` workers serving ``address``; None when they are started by someone else."""

    def _reserve(self, n: int) -> None:
        """Claim what ``n`` workers hold (a Spark application's task slots); BackendError if taken."""

    def _release(self) -> None:
        """Give back what :meth:`_reserve` claimed."""

    def _secret(self) -> bytes:
        """The secret workers must prove they hold: a fresh one per start."""
        return new_secret()

    def _reach_hint(self, n: int) -> str:
        """What to check when not every worker connects."""
        return "Check that the workers can reach the driver (bind_address)."

    def _worker_address(self, bound: tuple[str, int]) -> tuple[str, int]:
        """The address workers dial: the bound one, or this host's for every interface."""
        host, port = bound
        return ("127.0.0.1" if host in ("0.0.0.0", "::", "") else host), port

    # -- the Backend contract -----------------------------------------------------------------------

    @property
    def is_running(self) -> bool:
        """Whether :meth:`start` launched the workers and no :meth:`shutdown` has stopped them."""
        return self._server is not None

    def set_warm_up(self, task: str | None) -> None:
        """What each worker runs in a thread of its own once connected, for the next :meth:`start`
        (see :meth:`Backend.set_warm_up <cerebro_spark.backend.base.Backend.set_warm_up>`)."""
        self._warm_up = task

    def set_description(self, text: str) -> None:
        """The engine's description of the work the next :meth:`start` launches (the Spark UI's job
        description for ``SparkBackend``)."""
        self._description = text

    @property
    def num_workers(self) -> int:
        """Number of workers (P); before :meth:`start` it is resolved (and checked) from the engine."""
        if self._num_workers is not None:
            return self._num_workers
        return self._resolve_num_workers()

    def start(self) -> None:
        """Launch the workers; return once all of them are connected and authenticated.

        Raises
        ------
        InvalidParamError
            If ``num_workers`` is not an int >= 1.
        BackendError
            If the engine cannot hold ``num_workers`` workers at once, the workers fail, or not every
            worker connects within ``start_timeout_s``.
        """
        name = type(self).__name__
        with self._lifecycle:
            if self._server is not None:
                raise BackendError(f"{name} is already started: call shutdown() before starting it again.")
            n = self._resolve_num_workers()
            self._reserve(n)
            try:
                self._num_workers, self._failure = n, None
                self._events = queue.Queue()
                secret = self._secret()
                self._server = self._listen(self._bind_host(), secret, n)
                address = self._worker_address(self._server.address)
                self._job = self._launch(n, address, secret, self._events)
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

        Raises WorkerLostError, naming the worker and the engine's error, once a worker dies, hangs
        (``worker_timeout_s``) or what holds the workers ends; it sticks until :meth:`restart`.
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
        """A worker was found hung by the driver: the next shutdown cancels the workers at once."""
        if self._failure is None:
            self._failure = error

    def last_seen(self, worker_id: int) -> float | None:
        """Driver's ``time.monotonic()`` when ``worker_id`` last sent anything (heartbeats included)."""
        server = self._server
        return None if server is None else server.last_seen(worker_id)

    def shutdown(self) -> None:
        """Stop the workers, what holds them, the server and every thread. Idempotent.

        After a lost worker the workers are cancelled at once (a hung worker would not stop by itself)."""
        with self._lifecycle:
            self._stop(grace_s=0.0 if self._failure is not None else SHUTDOWN_WAIT_S)

    def describe(self) -> str:
        n = self._num_workers if self._num_workers is not None else self._requested_workers or "auto"
        address = "not started"
        if self._server is not None:
            host, port = self._server.address
            address = f"{host}:{port}"
        return f"{type(self).__name__}(num_workers={n}, address={address})"

    # -- start, failures and shutdown ---------------------------------------------------------------

    def _listen(self, host: str, secret: bytes, n: int) -> ControlServer:
        try:
            return ControlServer(
                host,
                secret,
                n,
                self._events,
                worker_timeout_s=self._worker_timeout_s,
                port=self._port,
                heartbeat_s=self._heartbeat_s,
                warm_up=self._warm_up,
            )
        except OSError as exc:
            where = f"{host!r}" if not self._port else f"{host}:{self._port}"
            raise BackendError(
                f"{type(self).__name__} cannot listen on {where}: {exc}. Pass bind_address= an address of "
                "this machine that the workers can reach."
            ) from exc

    def _await_workers(self, n: int) -> None:
        deadline = time.monotonic() + self._start_timeout_s
        ready: set[int] = set()
        while len(ready) < n:
            try:
                event = self._events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise BackendError(
                    f"Only {len(ready)} of {n} workers connected within start_timeout_s="
                    f"{self._start_timeout_s:g} s. {self._reach_hint(n)}"
                ) from None
            if isinstance(event, WorkerReady):
                ready.add(event.hello.worker_id)
            elif isinstance(event, (WorkerLost, JobEnded)):
                raise BackendError(
                    f"{type(self).__name__} could not start: {len(ready)} of {n} workers connected, then "
                    + self._failure_message(event)
                )

    def _running_server(self) -> ControlServer:
        if self._server is None:
            raise BackendError(
                f"{type(self).__name__} is not running: call start() (or use it as a context manager) first."
            )
        return self._server

    def _lost(self, event: WorkerLost | JobEnded) -> WorkerLostError:
        message = self._failure_message(event)
        job = self._job
        tail = (job.error or "") if job is not None else ""
        if isinstance(event, JobEnded):
            return WorkerLostError(
                message, worker_id=-1, reason=f"{self._engine} ended", log_tail=tail[-_LOG_TAIL_CHARS:]
            )
        return WorkerLostError(
            message, worker_id=event.worker_id, reason=event.reason, log_tail=tail[-_LOG_TAIL_CHARS:]
        )

    def _failure_message(self, event: WorkerLost | JobEnded) -> str:
        if isinstance(event, JobEnded):
            why = event.error or "every worker returned, as if the driver had closed the connections"
            return f"{self._engine} running the workers ended unexpectedly: {why}"
        job = self._job
        if job is not None and not event.reason.startswith("no heartbeat"):
            job.join(
                timeout=_LOST_WORKER_GRACE_S
            )  # the engine's error usually follows the dropped connection
        engine_error = (
            f" {self._engine[0].upper()}{self._engine[1:]} failed: {job.error}"
            if job is not None and job.error
            else ""
        )
        return f"Worker {event.worker_id} was lost ({event.reason}).{engine_error}"

    def _stop(self, grace_s: float) -> None:
        server, job = self._server, self._job
        try:
            if server is not None:
                if server.num_connected == 0:
                    grace_s = 0.0  # nobody to tell: cancel at once
                server.stop_workers(Shutdown())
            if job is not None:
                job.stop(grace_s, cancel_wait_s=SHUTDOWN_WAIT_S)
        finally:
            if server is not None:
                server.close()
            self._release()
            self._server, self._job = None, None
            if server is not None or job is not None:
                self._on_stopped(job)

    def _on_stopped(self, job: Launch | None) -> None:
        logger.info("%s stopped", type(self).__name__)


class ThreadLaunch:
    """A :class:`Launch` whose workers are held by a blocking call made in a driver thread (a Spark job,
    waiting on Dask futures or Ray object refs): :class:`JobEnded` goes to ``events`` when it returns.

    ``cancel`` ends the workers (cancels the job, the futures, kills the actors).
    """

    def __init__(
        self,
        run: Callable[[], None],
        cancel: Callable[[], None],
        events: queue.Queue[object],
        name: str,
        describe_error: Callable[[BaseException], str] = str,
    ) -> None:
        self.error: str | None = None
        self._cancel = cancel
        self._describe_error = describe_error
        self._thread = threading.Thread(target=self._run, args=(run, events), name=name, daemon=True)
        self._thread.start()

    def _run(self, run: Callable[[], None], events: queue.Queue[object]) -> None:
        try:
            run()
        except Exception as exc:
            self.error = self._describe_error(exc)
        events.put(JobEnded(self.error))

    def join(self, timeout: float) -> None:
        self._thread.join(timeout=timeout)

    def stop(self, grace_s: float, cancel_wait_s: float) -> None:
        """Wait ``grace_s`` seconds for the workers to end by themselves, then cancel them (also when
        the wait is interrupted)."""
        try:
            self._thread.join(timeout=grace_s)
        finally:
            if self._thread.is_alive():
                logger.warning("cancelling the workers (they did not stop within %.0f s)", grace_s)
                try:
                    self._cancel()
                except Exception:
                    logger.warning("cancelling the workers failed", exc_info=True)
                self._thread.join(timeout=cancel_wait_s)
                if self._thread.is_alive():
                    logger.error("the workers' %s is still running after cancellation", self._thread.name)
