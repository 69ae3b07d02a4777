"""The Backend contract: run tasks on P long-lived workers, one result at a time.

A task is a value: the dotted path of a function and its keyword arguments (plain, picklable
values). A worker resolves the path, calls ``fn(ctx, **kwargs)`` with its :class:`WorkerContext`,
and sends back a :class:`TaskResult`. The driver never imports what the task runs.
"""

from __future__ import annotations

import importlib
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from cerebro_spark.errors import BackendError, InvalidParamError


@dataclass(frozen=True, slots=True)
class TaskRequest:
    """Run ``fn`` (``"package.module:function"``) on a worker with ``kwargs``."""

    task_id: int
    fn: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TaskResult:
    """What a worker sends back for one :class:`TaskRequest`.

    ``ok`` is False when the function raised; then ``error`` is the exception's one-line summary
    and ``traceback`` the worker-side traceback. Times are the worker's ``time.time()``.
    """

    task_id: int
    worker_id: int
    ok: bool
    value: Any = None
    error: str = ""
    traceback: str = ""
    started_at: float = 0.0
    finished_at: float = 0.0


@dataclass
class WorkerContext:
    """State a worker keeps for its whole life: passed as the first argument of every task.

    ``cache`` holds what tasks keep between calls (models built, partitions read). SparkBackend
    gives every worker task of a Python worker process that process's one cache, so that a later
    search (or a relaunch) in the same Spark application finds its models built and traced and its
    partitions read; a process runs one such task at a time. What tasks put there must therefore
    say which run it belongs to (see ``cerebro_spark.training.trainer``). LocalBackend gives each
    worker thread a cache of its own.
    """

    worker_id: int
    num_workers: int
    cores: int = 1
    cache: dict[str, Any] = field(default_factory=dict)
    #: The GPUs Spark assigned to this worker's task (``TaskContext.resources()["gpu"].addresses``, with
    #: ``spark.task.resource.gpu.amount``); empty without GPU scheduling (LocalBackend, CPU clusters).
    gpus: tuple[str, ...] = ()


DEFAULT_MAX_RESTARTS = 3
"""How many times, by default, a search relaunches its workers after losing one before it gives up."""


def check_max_restarts(value: object, owner: str) -> int:
    """``value`` as a count of restarts (an int >= 0), else InvalidParamError naming ``owner``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidParamError(
            f"{owner}'s max_restarts must be an int >= 0. Received: max_restarts={value!r}"
        )
    return value


class WorkerLostError(BackendError):
    """A worker died, hung (no heartbeat within the backend's timeout) or its Spark task failed.

    Every task in flight on any worker is lost with it (a barrier stage fails as a whole); the
    backend can be started again (:meth:`Backend.restart`) to relaunch all the workers.

    Parameters
    ----------
    message : str
        What happened, naming the worker.
    worker_id : int
        The worker that was lost first.
    reason : str
        Why, in a few words (connection closed, no heartbeat for N s, ...).
    log_tail : str
        The end of what is known of the worker's last words (Spark's error, a traceback), if any.
    """

    def __init__(self, message: str, *, worker_id: int, reason: str = "", log_tail: str = "") -> None:
        super().__init__(message)
        self.worker_id = worker_id
        self.reason = reason
        self.log_tail = log_tail


def resolve_function(path: str) -> Callable[..., Any]:
    """Import ``"package.module:function"`` and return the function.

    Raises
    ------
    InvalidParamError
        If ``path`` is not of the form ``module:function`` or the function does not exist.
    """
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise InvalidParamError(
            f"A task function must be given as 'package.module:function'. Received: {path!r}"
        )
    module = importlib.import_module(module_name)
    try:
        fn = getattr(module, attr)
    except AttributeError:
        raise InvalidParamError(
            f"Module {module_name!r} has no function {attr!r} (task function {path!r})."
        ) from None
    if not callable(fn):
        raise InvalidParamError(f"Task function {path!r} is not callable: {type(fn).__name__}.")
    return fn  # type: ignore[no-any-return]


def run_task(ctx: WorkerContext, request: TaskRequest) -> TaskResult:
    """Resolve and call ``request``'s function with ``ctx``; never raises for a failing task.

    This is what every worker does with a request. An exception raised while resolving or running
    the function becomes ``TaskResult(ok=False)`` with its summary and traceback.
    """
    started = time.time()
    try:
        value = resolve_function(request.fn)(ctx, **request.kwargs)
    except Exception as exc:
        return TaskResult(
            task_id=request.task_id,
            worker_id=ctx.worker_id,
            ok=False,
            error=f"{type(exc).__name__}: {exc}",
            traceback=traceback.format_exc(),
            started_at=started,
            finished_at=time.time(),
        )
    return TaskResult(
        request.task_id, ctx.worker_id, True, value, started_at=started, finished_at=time.time()
    )


class Backend(ABC):
    """P long-lived workers that run :class:`TaskRequest`s.

    Use as a context manager, or call :meth:`start` and :meth:`shutdown`::

        with backend:
            backend.submit(0, TaskRequest(1, "pkg.mod:fn", {"x": 1}))
            result = backend.next_result(timeout=60)

    A worker runs one task at a time; tasks submitted to a busy worker wait in its queue, in order.
    """

    @property
    @abstractmethod
    def num_workers(self) -> int:
        """Number of workers (P)."""

    @property
    def max_restarts(self) -> int:
        """How many times a search may relaunch the workers after losing one (default 3)."""
        return int(getattr(self, "_max_restarts", DEFAULT_MAX_RESTARTS))

    @abstractmethod
    def start(self) -> None:
        """Launch the workers and return once every one of them is ready to take tasks.

        Raises ``BackendError`` if the workers cannot be started (with the reason)."""

    @abstractmethod
    def submit(self, worker_id: int, request: TaskRequest) -> None:
        """Queue ``request`` on worker ``worker_id``; returns at once."""

    @abstractmethod
    def next_result(self, timeout: float | None = None) -> TaskResult | None:
        """Block until some worker finishes a task and return its result, or ``None`` after
        ``timeout`` seconds. Raises :class:`WorkerLostError` if a worker died or hung (every task
        in flight is then lost) and ``BackendError`` if the backend itself failed."""

    @abstractmethod
    def shutdown(self) -> None:
        """Stop every worker and release threads, sockets and jobs. Idempotent; safe after a failure."""

    def mark_lost(self, error: WorkerLostError) -> None:
        """The caller found a worker lost by itself (a unit past its deadline while the worker still
        beats): the next :meth:`shutdown` must not wait for the workers to finish. Backends that can
        end a running task (SparkBackend cancels its job) override this; in-process threads cannot be
        ended, so LocalBackend waits for them."""
        return None

    def restart(self) -> None:
        """Relaunch every worker after a :class:`WorkerLostError`: :meth:`shutdown`, then :meth:`start`.

        Workers come back with fresh contexts (run the setup task again); tasks in flight are lost."""
        self.shutdown()
        self.start()

    @property
    def is_running(self) -> bool:
        """Whether the workers are started (and not shut down). A search that finds its backend
        running uses the workers as they are; backends that do not tell are started by every search."""
        return False

    def set_warm_up(self, task: str | None) -> None:
        """A task function (``"package.module:function"``, called with the worker context) each worker
        runs in a thread of its own as soon as it starts, beside its first tasks: e.g. importing
        TensorFlow while the driver still builds the models. Its errors are logged, not raised (the
        tasks that need what it does still do it). Backends whose workers live in the driver's
        process ignore it."""
        return None

    def set_description(self, text: str) -> None:
        """Name the work the next :meth:`start` launches, for the cluster's UI (the Spark UI's job
        description). Backends without such a UI ignore it."""
        return None

    def describe(self) -> str:
        """A one-line description for logs."""
        return f"{type(self).__name__}(num_workers={self.num_workers})"

    def __enter__(self) -> Backend:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.shutdown()
