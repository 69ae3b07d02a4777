"""The worker side of the control plane: connect to the driver, then run its tasks until told to stop.

Runs for the whole life of a backend inside what holds a worker: a Spark barrier task, a Dask task, a
Ray actor, or a ``cerebro-worker`` process started by hand. It imports no engine: the caller of
:func:`serve` passes in everything it needs as plain values.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from cerebro_spark.backend.base import TaskRequest, TaskResult, WorkerContext, resolve_function, run_task
from cerebro_spark.backend.protocol import (
    ANY_WORKER,
    HANDSHAKE_TIMEOUT_S,
    Channel,
    Heartbeat,
    Hello,
    Shutdown,
    UndecodableMessage,
    Welcome,
    client_handshake,
)
from cerebro_spark.errors import InvalidParamError

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 60.0
"""How long a worker keeps retrying to reach the driver's server."""

DEFAULT_REACH_HINT = (
    "Check that executors can reach the driver host (SparkBackend's bind_address, spark.driver.host)."
)

#: What worker tasks keep between calls, for the life of this Python worker process: Spark reuses the
#: process for later barrier tasks (one at a time), which then find their models traced and their
#: partitions read (see ``WorkerContext.cache``).
_PROCESS_CACHE: dict[str, object] = {}

_THREAD_ENV_VARS = ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


def serve(
    driver_address: tuple[str, int],
    secret: bytes,
    worker_id: int = ANY_WORKER,
    num_workers: int = 0,
    cores: int = 1,
    heartbeat_s: float = 5.0,
    gpus: tuple[str, ...] = (),
    *,
    connect_timeout_s: float | None = None,
    connect_hint: str | None = None,
    warm_up: str | None = None,
) -> None:
    """Serve the driver at ``driver_address`` as worker ``worker_id`` until it says Shutdown.

    ``worker_id`` :data:`~cerebro_spark.backend.protocol.ANY_WORKER` (a worker started by hand) takes
    the id the driver gives it; the driver's Welcome also says how many workers there are and, when it
    decides them, the heartbeat period and the warm-up task (else ``heartbeat_s`` and ``warm_up``).

    Returns on :class:`~cerebro_spark.backend.protocol.Shutdown` or when the driver closes the
    connection. Raises AuthenticationError if the handshake fails and ConnectionError if the driver
    cannot be reached within ``connect_timeout_s`` seconds (:data:`CONNECT_TIMEOUT_S` by default), with
    ``connect_hint`` (what to do) in its message.
    ``warm_up``: a task function run in a thread of its own once connected (see
    :meth:`~cerebro_spark.backend.base.Backend.set_warm_up`).
    """
    pin_threads(cores)
    sock = _connect(driver_address, worker_id, connect_timeout_s, connect_hint)
    channel = client_handshake(sock, secret)
    stop = threading.Event()
    beat: threading.Thread | None = None
    try:
        channel.send(Hello(worker_id, os.getpid(), socket.gethostname(), cores))
        welcome = _welcome(channel)
        worker_id, num_workers = welcome.worker_id, welcome.num_workers
        heartbeat_s = welcome.heartbeat_s if welcome.heartbeat_s is not None else heartbeat_s
        warm_up = welcome.warm_up if welcome.warm_up is not None else warm_up
        logger.info("worker %d connected to the driver at %s:%d", worker_id, *driver_address)
        beat = threading.Thread(
            target=_heartbeat_loop,
            args=(channel, worker_id, heartbeat_s, stop),
            name=f"cerebro-heartbeat-{worker_id}",
            daemon=True,
        )
        beat.start()
        ctx = WorkerContext(worker_id, num_workers, cores, cache=_PROCESS_CACHE, gpus=gpus)
        if warm_up is not None:
            threading.Thread(
                target=_warm_up, args=(warm_up, ctx), name="cerebro-warm-up", daemon=True
            ).start()
        _serve_requests(channel, ctx)
    finally:
        stop.set()
        channel.close()
        if beat is not None and beat.is_alive():
            beat.join(timeout=heartbeat_s + 5.0)
    logger.info("worker %d stopped", worker_id)


def _welcome(channel: Channel) -> Welcome:
    """The driver's answer to Hello; ConnectionError if it closes the connection instead (no free id,
    a duplicate id, or a driver that is stopping)."""
    try:
        message = channel.recv(deadline=time.monotonic() + HANDSHAKE_TIMEOUT_S)
    except (ConnectionError, OSError, TimeoutError) as exc:
        raise ConnectionError(f"The driver did not admit this worker: {exc!r}") from exc
    if not isinstance(message, Welcome):
        raise ConnectionError(f"The driver answered Hello with {type(message).__name__}, not Welcome.")
    return message


def _warm_up(task: str, ctx: WorkerContext) -> None:
    started = time.perf_counter()
    try:
        resolve_function(task)(ctx)
    except Exception:  # the first task that needs it does it again, and reports its error
        logger.warning("worker %d: warm-up %s failed", ctx.worker_id, task, exc_info=True)
        return
    logger.info("worker %d: warm-up %s took %.1fs", ctx.worker_id, task, time.perf_counter() - started)


def pin_threads(cores: int) -> None:
    """Set the thread-count variables that TensorFlow and OpenMP read when they are first imported."""
    for name in _THREAD_ENV_VARS:
        os.environ[name] = str(cores)


def _connect(
    address: tuple[str, int], worker_id: int, timeout_s: float | None = None, hint: str | None = None
) -> socket.socket:
    timeout_s = CONNECT_TIMEOUT_S if timeout_s is None else timeout_s
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        try:
            return socket.create_connection(address, timeout=min(10.0, timeout_s))
        except OSError as exc:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                who = "This worker" if worker_id == ANY_WORKER else f"Worker {worker_id}"
                raise ConnectionError(
                    f"{who} could not reach the driver at {address[0]}:{address[1]} within {timeout_s:g} s: "
                    f"{exc}. {hint or DEFAULT_REACH_HINT}"
                ) from exc
            logger.debug("worker %d: driver not reachable yet (%s); retrying", worker_id, exc)
            time.sleep(min(delay, remaining))  # connect retry backoff, not a poll for work
            delay = min(delay * 2, 2.0)


def _serve_requests(channel: Channel, ctx: WorkerContext) -> None:
    while True:
        try:
            message = channel.recv()
        except (ConnectionError, OSError):
            logger.info("worker %d: the driver closed the connection", ctx.worker_id)
            return
        except UndecodableMessage as exc:
            if exc.task_id is None:
                raise
            _send_result(channel, _undecodable_request(exc, exc.task_id, ctx.worker_id))
            continue
        if isinstance(message, Shutdown):
            logger.info("worker %d: shutdown requested by the driver", ctx.worker_id)
            return
        if not isinstance(message, TaskRequest):
            logger.warning(
                "worker %d ignored an unexpected %s message", ctx.worker_id, type(message).__name__
            )
            continue
        logger.debug("worker %d running task %d (%s)", ctx.worker_id, message.task_id, message.fn)
        result = run_task(ctx, message)
        if not result.ok:
            logger.info("worker %d: task %d failed: %s", ctx.worker_id, message.task_id, result.error)
        try:
            _send_result(channel, result)
        except OSError:
            logger.info(
                "worker %d: the driver went away before task %d's result", ctx.worker_id, result.task_id
            )
            return


def _undecodable_request(exc: UndecodableMessage, task_id: int, worker_id: int) -> TaskResult:
    """The failed result of a request this worker cannot unpickle: the task fails, not the worker."""
    now = time.time()
    error = (
        f"The worker cannot unpickle the request of task {task_id} ({exc}). Every value sent to the "
        "workers (params, custom objects) must be importable there: define its class or function in a "
        "module the executors can import (a notebook's or script's __main__ is not), or pass plain values."
    )
    logger.warning("worker %d: %s", worker_id, error)
    return TaskResult(
        task_id=task_id, worker_id=worker_id, ok=False, error=error, started_at=now, finished_at=now
    )


def _send_result(channel: Channel, result: TaskResult) -> None:
    try:
        channel.send(result)
    except InvalidParamError as exc:
        # the value cannot cross the wire: report that instead of losing the result
        channel.send(
            TaskResult(
                task_id=result.task_id,
                worker_id=result.worker_id,
                ok=False,
                error=f"The task's return value cannot be sent to the driver. {exc}",
                started_at=result.started_at,
                finished_at=result.finished_at,
            )
        )


def _heartbeat_loop(channel: Channel, worker_id: int, period_s: float, stop: threading.Event) -> None:
    while not stop.wait(period_s):
        try:
            channel.send(Heartbeat(worker_id, time.time()))
        except OSError:
            return
