"""The driver side of the control plane: accept, authenticate and read P worker connections.

Pure standard library (no pyspark): :class:`~cerebro_spark.backend.spark.SparkBackend` owns one
:class:`ControlServer` per start. Everything the workers say arrives as one stream of events on a
``queue.Queue``: :class:`WorkerReady`, ``TaskResult`` and :class:`WorkerLost`.
"""

from __future__ import annotations

import logging
import queue
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cerebro_spark.backend.base import TaskResult
from cerebro_spark.backend.protocol import (
    ANY_WORKER,
    HANDSHAKE_TIMEOUT_S,
    Channel,
    Heartbeat,
    Hello,
    Message,
    UndecodableMessage,
    Welcome,
    server_handshake,
)
from cerebro_spark.errors import AuthenticationError, BackendError

logger = logging.getLogger(__name__)

_JOIN_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class WorkerReady:
    """A worker authenticated and said Hello."""

    hello: Hello


@dataclass(frozen=True, slots=True)
class WorkerLost:
    """A registered worker's connection ended (or broke) while the server was not closing."""

    worker_id: int
    reason: str


class ControlServer:
    """Listen on ``host`` (``port``: 0, an ephemeral one), authenticate workers with ``secret``, post
    their events. Each admitted worker gets a :class:`~cerebro_spark.backend.protocol.Welcome`.

    Parameters
    ----------
    host : str
        Address to bind (the one executors use to reach the driver).
    secret : bytes
        This run's secret; a peer that does not hold it is refused before anything is unpickled.
    num_workers : int
        Accepted worker ids are ``0 .. num_workers - 1``, each at most once.
    events : queue.Queue
        Where :class:`WorkerReady`, ``TaskResult`` and :class:`WorkerLost` events go.
    worker_timeout_s : float, optional
        A connected worker silent for longer than this (no heartbeat, no result) is reported as
        :class:`WorkerLost` once: it hangs. None: never.
    max_pending : int, optional
        At most this many connections authenticate at once (each holds a thread for up to
        ``handshake_timeout_s``); more are closed at once. Default ``2 * num_workers + 8``.
    port : int, default 0
        The port to listen on (0: any free one). Workers started by hand dial a port known beforehand.
    heartbeat_s, warm_up : optional
        Told to every worker in its Welcome (None: the worker's own).
    """

    def __init__(
        self,
        host: str,
        secret: bytes,
        num_workers: int,
        events: queue.Queue[object],
        handshake_timeout_s: float = HANDSHAKE_TIMEOUT_S,
        worker_timeout_s: float | None = None,
        max_pending: int | None = None,
        *,
        port: int = 0,
        heartbeat_s: float | None = None,
        warm_up: str | None = None,
    ) -> None:
        self._secret = secret
        self._welcome = (heartbeat_s, warm_up)
        self._max_pending = max_pending if max_pending is not None else 2 * num_workers + 8
        self._num_workers = num_workers
        self._events = events
        self._handshake_timeout_s = handshake_timeout_s
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._channels: dict[int, Channel] = {}
        self._pending: set[socket.socket] = set()
        self._last_seen: dict[int, float] = {}
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server((host, port), backlog=max(16, 2 * num_workers))
        bound_host, port = self._listener.getsockname()[:2]
        self._address = (str(bound_host), int(port))
        self._wake_r, self._wake_w = socket.socketpair()
        self._accept_thread = self._spawn(self._accept_loop, "cerebro-spark-accept")
        self._hung: set[int] = set()
        if worker_timeout_s is not None:
            self._spawn(self._watch_heartbeats, "cerebro-spark-watchdog", float(worker_timeout_s))

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the server listens on."""
        return self._address

    def last_seen(self, worker_id: int) -> float | None:
        """``time.monotonic()`` when the driver last heard from ``worker_id`` (None: never)."""
        return self._last_seen.get(worker_id)

    def send(self, worker_id: int, message: Message) -> None:
        """Send ``message`` to ``worker_id``. Raises BackendError if it is not connected or the send fails."""
        channel = self._channels.get(worker_id)
        if channel is None:
            raise BackendError(
                f"Worker {worker_id} is not connected to the driver (it never said Hello or left)."
            )
        try:
            channel.send(message)
        except OSError as exc:
            raise BackendError(f"Sending to worker {worker_id} failed: {exc!r}. The worker is lost.") from exc

    @property
    def num_connected(self) -> int:
        """How many workers are connected now."""
        with self._lock:
            return len(self._channels)

    def stop_workers(self, message: Message) -> None:
        """From now on, disconnects are expected (no :class:`WorkerLost`); send ``message`` to every worker."""
        self._closing.set()
        self.broadcast(message)

    def broadcast(self, message: Message) -> None:
        """Send ``message`` to every connected worker, ignoring the ones that are gone."""
        with self._lock:
            channels = dict(self._channels)
        for worker_id, channel in channels.items():
            try:
                channel.send(message)
            except OSError as exc:
                logger.debug("could not send %s to worker %d: %r", type(message).__name__, worker_id, exc)

    def close(self) -> None:
        """Stop accepting, close every connection and join every thread this server started. Idempotent."""
        self._closing.set()
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        self._accept_thread.join(timeout=_JOIN_TIMEOUT_S)  # no thread is spawned after this
        with self._lock:
            channels = list(self._channels.values())
            pending = list(self._pending)
            threads = list(self._threads)
        for channel in channels:
            channel.close()
        for sock in pending:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout=_JOIN_TIMEOUT_S)
                if thread.is_alive():
                    logger.error("control-plane thread %s did not stop", thread.name)
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()

    def _watch_heartbeats(self, timeout_s: float) -> None:
        """Report, once, every connected worker not heard from for ``timeout_s`` seconds."""
        while not self._closing.wait(max(0.05, timeout_s / 10)):
            now = time.monotonic()
            with self._lock:
                silent = [
                    (wid, now - self._last_seen.get(wid, now))
                    for wid in self._channels
                    if wid not in self._hung and now - self._last_seen.get(wid, now) > timeout_s
                ]
                self._hung.update(wid for wid, _ in silent)
            for wid, quiet in silent:
                reason = (
                    f"no heartbeat for {quiet:.0f} s (worker_timeout_s={timeout_s:g}): the worker hangs or "
                    "its machine is unreachable"
                )
                logger.warning("worker %d lost: %s", wid, reason)
                self._events.put(WorkerLost(wid, reason))

    def _spawn(self, target: Callable[..., None], name: str, *args: Any) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]  # finished ones are forgotten
            self._threads.append(thread)
        thread.start()
        return thread

    def _accept_loop(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._closing.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self._wake_r or self._closing.is_set():
                        return
                    try:
                        conn, peer = self._listener.accept()
                    except OSError as exc:
                        logger.debug("accept failed: %r", exc)
                        continue
                    with self._lock:
                        if self._closing.is_set():
                            conn.close()
                            return
                        crowded = len(self._pending) >= self._max_pending
                        if not crowded:
                            self._pending.add(conn)
                    if crowded:  # unauthenticated connections cost a thread each: a cap, not a flood
                        logger.warning(
                            "control plane refused a connection from %s: %d connections are already "
                            "authenticating",
                            peer,
                            self._max_pending,
                        )
                        conn.close()
                        continue
                    try:
                        self._spawn(self._serve_connection, f"cerebro-spark-conn-{peer[1]}", conn)
                    except RuntimeError as exc:  # no thread to be had: drop this one, keep accepting
                        logger.warning("control plane dropped a connection from %s: %s", peer, exc)
                        with self._lock:
                            self._pending.discard(conn)
                        conn.close()

    def _serve_connection(self, conn: socket.socket) -> None:
        try:
            worker_id, channel = self._admit(conn)
        except AuthenticationError:
            return  # logged and closed by the handshake
        except Exception as exc:
            logger.warning("control plane dropped a connection: %s", exc)
            conn.close()
            return
        finally:
            with self._lock:
                self._pending.discard(conn)
        if worker_id >= 0:
            self._read_loop(worker_id, channel)

    def _admit(self, conn: socket.socket) -> tuple[int, Channel]:
        """Authenticate, read Hello, register. Returns worker id -1 for a dropped duplicate."""
        channel = server_handshake(conn, self._secret, self._handshake_timeout_s)
        hello = channel.recv(deadline=time.monotonic() + self._handshake_timeout_s)
        if not isinstance(hello, Hello):
            raise BackendError(f"expected Hello as the first message, got {type(hello).__name__}")
        wid = hello.worker_id
        with self._lock:
            if wid == ANY_WORKER:  # a worker started by hand: the lowest free id
                wid = next((i for i in range(self._num_workers) if i not in self._channels), ANY_WORKER)
            refused = self._closing.is_set() or wid in self._channels or not 0 <= wid < self._num_workers
            if not refused:
                self._channels[wid] = channel
                self._last_seen[wid] = time.monotonic()
        if refused:
            logger.warning(
                "control plane dropped worker id %r from %s (pid %d): duplicate, out of [0, %d), no id free "
                "or closing",
                wid,
                hello.host,
                hello.pid,
                self._num_workers,
            )
            channel.close()
            return -1, channel
        try:
            channel.send(Welcome(wid, self._num_workers, *self._welcome))
        except OSError as exc:  # it left at once: its read loop reports it
            logger.debug("could not welcome worker %d: %r", wid, exc)
        logger.info("worker %d ready: pid %d on %s, %d cores", wid, hello.pid, hello.host, hello.cores)
        if wid != hello.worker_id:
            hello = Hello(wid, hello.pid, hello.host, hello.cores)
        self._events.put(WorkerReady(hello))
        return wid, channel

    def _read_loop(self, worker_id: int, channel: Channel) -> None:
        while True:
            try:
                message = channel.recv()
            except Exception as exc:
                if isinstance(exc, UndecodableMessage) and exc.task_id is not None:  # that task fails, alone
                    self._last_seen[worker_id] = time.monotonic()
                    now = time.time()
                    error = f"The driver cannot unpickle the result of task {exc.task_id}: {exc}"
                    self._events.put(
                        TaskResult(
                            exc.task_id, worker_id, False, error=error, started_at=now, finished_at=now
                        )
                    )
                    continue
                if not self._closing.is_set():
                    if isinstance(exc, ConnectionError):
                        reason = (
                            "its connection closed: the worker process died or what held it (a Spark task, "
                            "a Dask task, a Ray actor) was killed"
                        )
                    elif isinstance(exc, OSError):
                        reason = f"its connection broke: {exc!r}"
                    else:
                        reason = f"it sent a message the driver cannot decode: {exc!r}"
                    logger.warning("worker %d lost: %s", worker_id, reason)
                    self._events.put(WorkerLost(worker_id, reason))
                with self._lock:
                    self._channels.pop(worker_id, None)
                channel.close()
                return
            self._last_seen[worker_id] = time.monotonic()
            if isinstance(message, TaskResult):
                self._events.put(message)
            elif not isinstance(message, Heartbeat):
                logger.warning("worker %d sent an unexpected %s message", worker_id, type(message).__name__)
