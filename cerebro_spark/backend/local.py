"""An in-process Backend: one thread per worker. The test double for tests and notebooks without Spark."""

from __future__ import annotations

import logging
import queue
import threading
import traceback
from dataclasses import dataclass
from typing import Any

from cerebro_spark.backend.base import (
    DEFAULT_MAX_RESTARTS,
    Backend,
    TaskRequest,
    TaskResult,
    WorkerContext,
    WorkerLostError,
    check_max_restarts,
    run_task,
)
from cerebro_spark.errors import BackendError, InvalidParamError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _WorkerDied:
    worker_id: int
    reason: str
    traceback: str = ""


_STOP = object()


class LocalBackend(Backend):
    """Run tasks on ``num_workers`` threads of this process.

    Each worker is a thread with its own request queue and its own :class:`WorkerContext`
    (``cores=1``), kept for the life of the backend; results of all workers arrive on one queue.
    Tasks run the same way as on Spark (a task that raises gives ``TaskResult(ok=False)``), but they
    share this process: nothing is pickled and nothing is isolated.

    A task that raises a ``BaseException`` other than ``Exception`` (``SystemExit``, as
    :mod:`cerebro_spark.testing.fakes` does to fake a dead worker) ends its worker thread:
    :meth:`next_result` then raises :class:`~cerebro_spark.backend.base.WorkerLostError`, as
    SparkBackend does when a worker process dies, and :meth:`restart` brings every worker back.

    Parameters
    ----------
    num_workers : int, default 2
        Number of worker threads (at least 1).
    max_restarts : int, default 3
        How many times a search may relaunch the workers after losing one.
    keep_caches : bool, default False
        Keep each worker's ``WorkerContext.cache`` across :meth:`start` calls (later searches on this
        backend, relaunches), as SparkBackend's reused Python worker processes do. Off by default:
        each start gives fresh caches.

    Examples
    --------
    >>> from cerebro_spark.backend import LocalBackend, TaskRequest
    >>> with LocalBackend(num_workers=2) as backend:
    ...     backend.submit(0, TaskRequest(1, "cerebro_spark.testing.tasks:echo", {"value": 42}))
    ...     backend.next_result(timeout=10).value
    42
    """

    def __init__(
        self, num_workers: int = 2, *, max_restarts: int = DEFAULT_MAX_RESTARTS, keep_caches: bool = False
    ) -> None:
        self._num_workers = num_workers
        self._caches: dict[int, dict[str, Any]] | None = {} if keep_caches else None
        self._max_restarts = check_max_restarts(max_restarts, "LocalBackend")
        self._requests: list[queue.Queue[object]] = []
        self._results: queue.Queue[TaskResult | _WorkerDied] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._failure: WorkerLostError | None = None
        self._lock = threading.Lock()

    @property
    def num_workers(self) -> int:
        """Number of workers (P)."""
        return self._num_workers

    @property
    def is_running(self) -> bool:
        """Whether :meth:`start` started the worker threads and no :meth:`shutdown` has stopped them."""
        return bool(self._threads)

    def start(self) -> None:
        """Start the worker threads. Raises InvalidParamError if ``num_workers`` < 1."""
        n = self._num_workers
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InvalidParamError(
                f"LocalBackend's num_workers must be an int >= 1. Received: num_workers={n!r}"
            )
        with self._lock:
            if self._threads:
                raise BackendError(
                    "LocalBackend is already started: call shutdown() before starting it again."
                )
            self._results = queue.Queue()
            self._failure = None
            self._requests = [queue.Queue() for _ in range(n)]
            self._threads = [
                threading.Thread(
                    target=self._work,
                    args=(
                        WorkerContext(worker_id=i, num_workers=n, cores=1, cache=self._cache(i)),
                        self._requests[i],
                        self._results,
                    ),
                    name=f"cerebro-local-worker-{i}",
                    daemon=True,
                )
                for i in range(n)
            ]
            for thread in self._threads:
                thread.start()
        logger.info("LocalBackend started %d worker threads", n)

    def _cache(self, worker_id: int) -> dict[str, Any]:
        return {} if self._caches is None else self._caches.setdefault(worker_id, {})

    def submit(self, worker_id: int, request: TaskRequest) -> None:
        """Queue ``request`` on worker ``worker_id``; returns at once."""
        if not self._threads:
            raise BackendError(
                "LocalBackend is not running: call start() (or use it as a context manager) first."
            )
        if (
            isinstance(worker_id, bool)
            or not isinstance(worker_id, int)
            or not 0 <= worker_id < self._num_workers
        ):
            raise InvalidParamError(
                f"worker_id must be an int in [0, {self._num_workers - 1}]. Received: worker_id={worker_id!r}"
            )
        if not isinstance(request, TaskRequest):
            raise InvalidParamError(f"request must be a TaskRequest. Received: {type(request).__name__}")
        self._requests[worker_id].put(request)

    def next_result(self, timeout: float | None = None) -> TaskResult | None:
        """Block until a worker finishes a task; ``None`` after ``timeout`` seconds."""
        if self._failure is not None:
            raise self._failure
        try:
            item = self._results.get(timeout=timeout)
        except queue.Empty:
            return None
        if isinstance(item, _WorkerDied):
            self._failure = WorkerLostError(
                f"Local worker {item.worker_id} died: {item.reason}",
                worker_id=item.worker_id,
                reason=item.reason,
                log_tail=item.traceback,
            )
            raise self._failure
        return item

    def shutdown(self) -> None:
        """Stop the worker threads (each finishes its current task first; queued ones are dropped) and
        join them. Idempotent."""
        with self._lock:
            threads, requests = self._threads, self._requests
            self._threads, self._requests = [], []
        for q in requests:
            _drain(q)
            q.put(_STOP)
        for thread in threads:
            thread.join()
        if threads:
            logger.info("LocalBackend stopped %d worker threads", len(threads))

    @staticmethod
    def _work(
        ctx: WorkerContext, requests: queue.Queue[object], results: queue.Queue[TaskResult | _WorkerDied]
    ) -> None:
        try:
            while True:
                request = requests.get()
                if not isinstance(request, TaskRequest):  # _STOP
                    return
                results.put(run_task(ctx, request))
        except BaseException as exc:  # e.g. SystemExit in a task: tell the driver instead of hanging it
            logger.error("local worker %d died", ctx.worker_id, exc_info=True)
            results.put(_WorkerDied(ctx.worker_id, f"{type(exc).__name__}: {exc}", traceback.format_exc()))


def _drain(q: queue.Queue[object]) -> None:
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return
