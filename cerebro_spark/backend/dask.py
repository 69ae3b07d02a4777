"""DaskBackend: P long-lived workers, one long-running Dask task pinned to each of P Dask workers.

Each task runs :func:`~cerebro_spark.backend._executor_loop.serve` for the whole search: it dials the
driver's authenticated control server and runs :class:`~cerebro_spark.backend.base.TaskRequest` messages
until Shutdown, like a Spark barrier task does for ``SparkBackend``. Dask itself only holds the tasks: the
driver sends the work over the control plane, not through the scheduler.

A killed Dask worker (its process died; a nanny starts a new one) is lost twice over: its control
connection closes (the control server reports the worker lost) and the scheduler removes it, which the
driver hears at once (the worker's topic of the scheduler's events): the tasks then end with the Dask
worker named. The search relaunches every worker (``restart``), on the Dask workers then alive.

Nothing here imports pyspark; Dask distributed is imported on first use.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import logging
import queue
import socket
import threading
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

from cerebro_spark.backend import _executor_loop
from cerebro_spark.backend._control_server import WorkerLost
from cerebro_spark.backend.base import DEFAULT_MAX_RESTARTS
from cerebro_spark.backend.remote import Launch, RemoteBackend, ThreadLaunch
from cerebro_spark.errors import BackendError, InvalidParamError, MissingDependencyError

#: A ``distributed.Client`` and ``distributed.Future``: distributed types only part of their methods, so
#: they are held as Any here.
DaskClient: TypeAlias = Any
DaskFuture: TypeAlias = Any

logger = logging.getLogger(__name__)

_INSTALL_HINT = "DaskBackend needs Dask distributed: pip install 'cerebro-spark[dask]'."

#: What a worker that cannot reach the driver says to do (in the Dask task's error).
WORKER_REACH_HINT = (
    "The Dask workers must reach the driver's control server: pass DaskBackend(bind_address=...) an "
    "address of the driver's machine that the Dask workers can reach."
)

_MAX_ERROR_CHARS = 8000
_TASK_PREFIX = "cerebro-worker"


def _distributed() -> Any:
    """The ``distributed`` module; MissingDependencyError naming the extra if it is not installed."""
    try:
        import distributed
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(_INSTALL_HINT) from exc
    return distributed


# ---- the Dask task ------------------------------------------------------------------------------------


def run_worker(
    address: tuple[str, int],
    secret: bytes,
    worker_id: int,
    num_workers: int,
    cores: int,
    heartbeat_s: float,
    warm_up: str | None,
) -> int:
    """The Dask task of worker ``worker_id`` (runs on a Dask worker): serve the driver until Shutdown.

    The task first secedes from the Dask worker's thread pool, as Dask advises for a task that runs for
    long while waiting on something else (here, the driver's requests): its thread no longer counts as a
    busy slot, so the Dask worker still runs other tasks (reading data for the search, a later relaunch
    of this worker while a hung task still holds its thread) and the scheduler does not count a
    search-long task in the worker's occupancy.

    Returns ``worker_id`` once the driver says Shutdown or closes the connection.
    """
    _distributed().secede()
    _executor_loop.serve(
        address,
        secret,
        worker_id,
        num_workers,
        cores,
        heartbeat_s,
        (),
        connect_hint=WORKER_REACH_HINT,
        warm_up=warm_up,
    )
    return worker_id


# ---- the driver side ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _DaskWorker:
    """One Dask worker as the scheduler lists it."""

    address: str
    name: str
    host: str
    nthreads: int


class _Departures:
    """Dask workers leaving the cluster, as the scheduler reports them (``remove-worker`` events on the
    worker's topic): one subscription per client and worker address, shared by every watcher of this
    process (a client keeps one handler per topic)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watchers: dict[tuple[str, str], dict[str, Callable[[dict[str, Any]], None]]] = {}

    def watch(
        self, client: DaskClient, address: str, token: str, callback: Callable[[dict[str, Any]], None]
    ) -> None:
        """Call ``callback(event)`` (in the client's event loop) once the worker at ``address`` leaves."""
        key = (str(client.id), address)
        with self._lock:
            watchers = self._watchers.setdefault(key, {})
            watchers[token] = callback
            if len(watchers) == 1:  # sent under the lock: subscriptions and their ends stay in order
                client.subscribe_topic(address, functools.partial(self._dispatch, key))

    def unwatch(self, client: DaskClient, address: str, token: str) -> None:
        key = (str(client.id), address)
        with self._lock:
            watchers = self._watchers.get(key, {})
            watchers.pop(token, None)
            if watchers or key not in self._watchers:
                return
            del self._watchers[key]
            try:
                client.unsubscribe_topic(address)
            except Exception:  # a closed client: nothing is sent any more anyway
                logger.debug("could not unsubscribe from Dask worker %s's events", address, exc_info=True)

    def _dispatch(self, key: tuple[str, str], event: tuple[float, Any]) -> None:
        message = event[1] if isinstance(event, tuple) and len(event) == 2 else None
        if not isinstance(message, dict) or message.get("action") != "remove-worker":
            return
        with self._lock:
            callbacks = list(self._watchers.get(key, {}).values())
        for callback in callbacks:
            callback(message)


_DEPARTURES = _Departures()


class _DaskTasks:
    """The P Dask tasks of one start: what a :class:`ThreadLaunch` waits on (:meth:`run`) and cancels
    (:meth:`cancel`).

    :meth:`run` returns once every task returned (the workers were told Shutdown) and raises as soon as
    one fails, is cancelled, or its Dask worker leaves the cluster (the scheduler would otherwise keep
    that pinned task waiting, without end, for a worker of that address to come back).
    """

    def __init__(self, client: DaskClient, workers: list[_DaskWorker], events: queue.Queue[object]) -> None:
        self._client = client
        self._workers = workers
        self._events = events
        self._token = uuid.uuid4().hex[:12]
        self.keys = [f"{_TASK_PREFIX}-{self._token}-{i}" for i in range(len(workers))]
        self._futures: list[DaskFuture] = []
        self._ends: queue.Queue[tuple[int, dict[str, Any] | None]] = queue.Queue()

    def watch(self) -> None:
        """Hear of the workers' departures; before the tasks are submitted, so that none is missed."""
        for i, worker in enumerate(self._workers):
            _DEPARTURES.watch(
                self._client, worker.address, self._token, functools.partial(self._on_departure, i)
            )

    def unwatch(self) -> None:
        for worker in self._workers:
            _DEPARTURES.unwatch(self._client, worker.address, self._token)

    def hold(self, futures: list[DaskFuture]) -> None:
        """The submitted tasks, worker ``i``'s at index ``i``."""
        self._futures = futures
        for i, future in enumerate(futures):
            future.add_done_callback(functools.partial(self._on_done, i))

    def _on_departure(self, i: int, event: dict[str, Any]) -> None:
        self._ends.put((i, event))

    def _on_done(self, i: int, _future: DaskFuture) -> None:
        self._ends.put((i, None))

    def run(self) -> None:
        """Wait for every task to return; raise BackendError once one fails or is lost, after cancelling
        the others (a task pinned to a departed Dask worker would otherwise wait on the scheduler for
        good, and one that returned would keep its result in a worker's memory)."""
        try:
            self._wait()
        except BaseException:
            try:
                self.cancel()
            except Exception:
                logger.warning("cancelling the Dask tasks failed", exc_info=True)
            raise
        finally:
            self.unwatch()
            self._futures = []  # released: their results (worker ids) leave the Dask workers' memory

    def _wait(self) -> None:
        running = set(range(len(self._futures)))
        while running:
            i, departure = self._ends.get()
            if i not in running:
                continue
            if departure is not None:
                self._lost(i, "its Dask worker left the cluster")
                raise BackendError(self._departure_message(i, departure))
            running.discard(i)
            future = self._futures[i]
            if future.cancelled():
                raise BackendError(f"Worker {i}'s Dask task {future.key} was cancelled.")
            if future.status == "error":  # its error, with the worker's name, ends the tasks (JobEnded)
                raise BackendError(self._error_message(i, future))

    def _lost(self, i: int, reason: str) -> None:
        """Name worker ``i`` as the one lost before the tasks end: whichever of this and its dropped
        connection reaches the backend first, the loss is that worker's (the driver blames its model)."""
        self._events.put(WorkerLost(i, reason))

    def cancel(self) -> None:
        """Cancel the tasks (force: also those another client wants). A task already running on a Dask
        worker keeps its thread until the driver closes its connection (the backend does, then)."""
        futures = self._futures
        if futures:
            self._client.cancel(futures, force=True)

    def _departure_message(self, i: int, event: dict[str, Any]) -> str:
        worker = self._workers[i]
        why = (
            "retired by the scheduler"
            if event.get("expected")
            else "its process died, was killed or stopped answering; its nanny, if any, starts a new one"
        )
        return (
            f"Dask worker {worker.address} (name {worker.name}), which ran worker {i}, left the cluster "
            f"({why})."
        )

    def _error_message(self, i: int, future: DaskFuture) -> str:
        worker = self._workers[i]
        try:
            exc = future.exception()
            tb = future.traceback()
        except Exception as unknown:  # the client lost the error (closed, cancelled meanwhile)
            exc, tb = unknown, None
        text = f"Worker {i}'s Dask task on {worker.address} failed: {type(exc).__name__}: {exc}"
        if tb is not None:
            text += "\n" + "".join(traceback.format_tb(tb)).rstrip()
        return text if len(text) <= _MAX_ERROR_CHARS else text[:_MAX_ERROR_CHARS] + " [...]"


def _is_this_machine(host: str) -> bool:
    """Whether ``host`` (a Dask worker's) names this machine: loopback, or an address it can bind."""
    if host in ("localhost", "::1") or host.startswith("127."):
        return True
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    for family, kind, _, _, sockaddr in infos:
        with socket.socket(family, kind) as probe:
            try:
                probe.bind((sockaddr[0], 0, *sockaddr[2:]))
            except OSError:
                continue
            return True
    return False


class DaskBackend(RemoteBackend):
    """Run tasks on ``num_workers`` long-lived Python workers, one long-running task per Dask worker.

    :meth:`start` opens an authenticated TCP server on the driver and submits one task to each of
    ``num_workers`` Dask workers, pinned there (``workers=[address]``, ``allow_other_workers=False``,
    a unique key each); each task connects back, proves it holds this run's secret (it travels with the
    task through the scheduler: use TLS between the client, scheduler and workers on an untrusted
    network), and then runs :class:`~cerebro_spark.backend.base.TaskRequest` messages until
    :meth:`shutdown`. The tasks secede from their worker's thread pool (see :func:`run_worker`); a task
    trains with as many threads as its Dask worker has (``cores`` of the worker context).

    Parameters
    ----------
    client : distributed.Client, optional
        The client of the Dask cluster; by default the current one (``distributed.get_client()``),
        looked up at first use.
    num_workers : int, optional
        Number of workers (P); by default one per running Dask worker, counted until the first start
        and then kept (for relaunches and later searches). Each holds one Dask worker for the whole
        search: at most the number of Dask workers.
    start_timeout_s : float, default 300
        How long :meth:`start` waits for every worker to connect, and, on a relaunch after a lost
        worker, for the cluster to have ``num_workers`` Dask workers again (a nanny restarts a killed
        worker's process; a cluster manager replaces a lost machine).
    heartbeat_s : float, default 5
        How often each worker sends a heartbeat (see :meth:`last_seen`).
    bind_address : str, optional
        Address of the driver that the Dask workers can reach. By default ``127.0.0.1`` when every Dask
        worker runs on this machine, else this machine's address on the route to the Dask workers.
    worker_timeout_s : float or None, default 120
        A worker that sends nothing (not even a heartbeat) for this long is treated as lost, like a
        dead one. None: never.
    max_restarts : int, default 3
        How many times a search relaunches the workers (every Dask task) after losing one; the units in
        flight are retried.

    Raises
    ------
    InvalidParamError
        If ``client`` is not a ``distributed.Client`` or ``num_workers`` not an int >= 1.
    MissingDependencyError
        If Dask distributed is not installed (the ``dask`` extra).

    Examples
    --------
    >>> from distributed import Client, LocalCluster  # doctest: +SKIP
    >>> client = Client(LocalCluster(n_workers=4, threads_per_worker=2))  # doctest: +SKIP
    >>> with DaskBackend(client) as backend:  # doctest: +SKIP
    ...     backend.submit(0, TaskRequest(1, "cerebro_spark.testing.tasks:echo", {"value": 1}))
    ...     backend.next_result(timeout=60).value
    1
    """

    _engine = "the Dask tasks"

    def __init__(
        self,
        client: DaskClient | None = None,
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
        distributed = _distributed()
        if client is not None and not isinstance(client, distributed.Client):
            raise InvalidParamError(
                "DaskBackend's client must be a distributed.Client (or None for the current one). "
                f"Received: client={type(client).__name__}"
            )
        if num_workers is not None and (
            isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1
        ):
            raise InvalidParamError(
                "DaskBackend's num_workers must be an int >= 1 (or None for one per Dask worker). "
                f"Received: num_workers={num_workers!r}"
            )
        self._given_client = client
        self._client: DaskClient | None = client

    def describe(self) -> str:
        """Scheduler, number of workers and the control plane's address."""
        client = self._client
        scheduler = getattr(getattr(client, "scheduler", None), "address", None) or "?"
        n = self._num_workers if self._num_workers is not None else self._requested_workers or "auto"
        address = "not started"
        if self._server is not None:
            host, port = self._server.address
            address = f"{host}:{port}"
        return f"DaskBackend(scheduler={scheduler}, num_workers={n}, address={address})"

    # -- what RemoteBackend asks of an engine --------------------------------------------------

    def _resolve_num_workers(self) -> int:
        client = self._dask_client()
        workers = self._dask_workers(client)
        if self._num_workers is not None:  # started before (a relaunch): the same P
            n = self._num_workers
            if len(workers) < n:
                workers = self._wait_for_workers(client, n, len(workers))
            if len(workers) < n:
                raise BackendError(
                    f"DaskBackend needs num_workers={n} Dask workers to relaunch its workers, but the "
                    f"cluster at {self._scheduler(client)} still has {len(workers)} running after "
                    f"start_timeout_s={self._start_timeout_s:g} s. A nanny restarts a killed Dask worker's "
                    "process; a Dask worker without one (or whose machine is gone) must be started again."
                )
        else:
            n = self._requested_workers if self._requested_workers is not None else len(workers)
            if n == 0:
                raise BackendError(
                    f"The Dask cluster at {self._scheduler(client)} has no workers. Start some (e.g. "
                    "cluster.scale(n)), wait for them (client.wait_for_workers(n)), or pass num_workers=."
                )
        if n > len(workers):
            raise BackendError(
                f"DaskBackend needs num_workers={n} Dask workers (one long task pinned to each for the whole "
                f"search), but the cluster at {self._scheduler(client)} has {len(workers)} running. Pass "
                f"num_workers <= {len(workers)}, or add Dask workers first (cluster.scale({n}), then "
                f"client.wait_for_workers({n}))."
            )
        return n

    def _launch(self, n: int, address: tuple[str, int], secret: bytes, events: queue.Queue[object]) -> Launch:
        client = self._dask_client()
        workers = self._dask_workers(client)[:n]
        if len(workers) < n:
            raise BackendError(
                f"DaskBackend needs num_workers={n} Dask workers, but the cluster at "
                f"{self._scheduler(client)} has {len(workers)} running now."
            )
        tasks = _DaskTasks(client, workers, events)
        tasks.watch()
        futures: list[DaskFuture] = []
        try:
            for i, worker in enumerate(workers):
                futures.append(
                    client.submit(
                        run_worker,
                        address,
                        secret,
                        i,
                        n,
                        worker.nthreads,
                        self._heartbeat_s,
                        self._warm_up,
                        key=tasks.keys[i],
                        workers=[worker.address],
                        allow_other_workers=False,
                        pure=False,
                    )
                )
        except BaseException:
            tasks.unwatch()
            if futures:
                client.cancel(futures, force=True)
            raise
        tasks.hold(futures)
        logger.info(
            "submitted %d Dask tasks (%s-*) pinned to %s",
            n,
            tasks.keys[0].rsplit("-", 1)[0],
            ", ".join(f"{w.address} ({w.nthreads} threads)" for w in workers),
        )
        return ThreadLaunch(tasks.run, tasks.cancel, events, name="cerebro-dask-tasks")

    def _bind_host(self) -> str:
        if self._bind_address:
            return self._bind_address
        return self._auto_host()

    def _worker_address(self, bound: tuple[str, int]) -> tuple[str, int]:
        host, port = bound
        if host in ("0.0.0.0", "::", ""):  # every interface: the address the Dask workers reach
            host = self._auto_host()
        return super()._worker_address((host, port))

    def _reach_hint(self, n: int) -> str:
        return (
            "Check that the Dask workers can reach this machine at bind_address (pass DaskBackend("
            "bind_address=...) an address of it they reach), and that each of the "
            f"{n} Dask workers has a free thread to start its task (the Dask dashboard shows them)."
        )

    def _on_stopped(self, job: Launch | None) -> None:
        logger.info("DaskBackend stopped (scheduler %s)", self._scheduler(self._client))

    # -- the cluster ---------------------------------------------------------------------------

    def _dask_client(self) -> DaskClient:
        """The client given, else the current one; InvalidParamError without one, BackendError if closed."""
        client = self._client
        if client is None or (self._given_client is None and client.status in ("closing", "closed")):
            distributed = _distributed()
            try:
                client = distributed.get_client()
            except ValueError as exc:
                raise InvalidParamError(
                    "DaskBackend's client must be a distributed.Client, or None to use the current one "
                    "(distributed.get_client()), but there is none. Create one first (e.g. "
                    "distributed.Client(scheduler_address)) or pass client=. Received: client=None"
                ) from exc
            self._client = client
        if client.status in ("closing", "closed"):
            raise BackendError(
                f"DaskBackend's client of the scheduler {self._scheduler(client)} is {client.status}: "
                "pass an open distributed.Client."
            )
        return client

    def _dask_workers(self, client: DaskClient) -> list[_DaskWorker]:
        """The running Dask workers, in a stable order (by name, then address)."""
        try:
            info = client.scheduler_info()
        except Exception as exc:
            raise BackendError(
                f"DaskBackend cannot reach the Dask scheduler {self._scheduler(client)}: {exc!r}"
            ) from exc
        workers = [
            _DaskWorker(
                address, str(w.get("name", address)), str(w.get("host", "")), max(1, int(w["nthreads"]))
            )
            for address, w in info.get("workers", {}).items()
            if w.get("status", "running") == "running"
        ]
        return sorted(workers, key=lambda w: (w.name, w.address))

    def _wait_for_workers(self, client: DaskClient, n: int, found: int) -> list[_DaskWorker]:
        logger.warning(
            "waiting up to %.0f s (start_timeout_s) for the Dask cluster to have %d workers again (%d now)",
            self._start_timeout_s,
            n,
            found,
        )
        try:
            client.wait_for_workers(n, timeout=self._start_timeout_s)
        except (TimeoutError, asyncio.TimeoutError) as exc:
            logger.warning("the Dask cluster did not get %d workers back: %s", n, exc)
        return self._dask_workers(client)

    def _auto_host(self) -> str:
        """127.0.0.1 when every Dask worker runs on this machine, else this machine's address on the
        route to them."""
        hosts = sorted({w.host for w in self._dask_workers(self._dask_client()) if w.host})
        remote = [host for host in hosts if not _is_this_machine(host)]
        if not remote:
            return "127.0.0.1"
        return str(importlib.import_module("distributed.utils").get_ip(remote[0]))

    @staticmethod
    def _scheduler(client: DaskClient | None) -> str:
        return str(getattr(getattr(client, "scheduler", None), "address", None) or "?")
