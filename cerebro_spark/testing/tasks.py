"""Tiny task functions for tests of the backends (referenced by dotted path in TaskRequests)."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from cerebro_spark.backend.base import WorkerContext


def echo(ctx: WorkerContext, value: Any) -> Any:
    """Return ``value`` unchanged."""
    return value


def blob(ctx: WorkerContext, size: int) -> bytes:
    """``size`` zero bytes: a large result from a small request."""
    return bytes(size)


def whoami(ctx: WorkerContext) -> dict[str, Any]:
    """Where this task ran: worker id, process id, cores and the TensorFlow thread setting."""
    return {
        "worker_id": ctx.worker_id,
        "num_workers": ctx.num_workers,
        "pid": os.getpid(),
        "cores": ctx.cores,
        "TF_NUM_INTRAOP_THREADS": os.environ.get("TF_NUM_INTRAOP_THREADS"),
    }


def count_calls(ctx: WorkerContext) -> int:
    """Count the calls on this worker in its context's cache: proves that the context lives on."""
    ctx.cache["count_calls"] = ctx.cache.get("count_calls", 0) + 1
    return int(ctx.cache["count_calls"])


def unpicklable(ctx: WorkerContext) -> threading.Lock:
    """Return a value that cannot be pickled (a lock)."""
    return threading.Lock()


def fail(ctx: WorkerContext, message: str) -> None:
    """Raise ``ValueError(message)``."""
    raise ValueError(message)


def block_until_file(ctx: WorkerContext, path: str, timeout_s: float) -> bool:
    """Wait until ``path`` exists (True) or ``timeout_s`` passes (False): a task that is busy on demand."""
    deadline = time.monotonic() + timeout_s
    tick = threading.Event()
    while not os.path.exists(path):
        if time.monotonic() >= deadline:
            return False
        tick.wait(0.01)
    return True


def crash(ctx: WorkerContext, code: int = 1) -> None:
    """End the worker's process at once (``os._exit``): a dead executor. Never run it on LocalBackend."""
    os._exit(code)


def _warm_up_event(ctx: WorkerContext) -> threading.Event:
    event: threading.Event = ctx.cache.setdefault("warm_up_done", threading.Event())
    return event


def warm_up_marker(ctx: WorkerContext) -> None:
    """A warm-up (``Backend.set_warm_up``): records that it ran in this worker, in its own thread."""
    ctx.cache["warm_up_thread"] = threading.current_thread().name
    _warm_up_event(ctx).set()


def wait_for_warm_up(ctx: WorkerContext, timeout_s: float) -> str | None:
    """The thread that ran :func:`warm_up_marker` in this worker, once it ran (None after ``timeout_s``)."""
    if not _warm_up_event(ctx).wait(timeout_s):
        return None
    return str(ctx.cache["warm_up_thread"])
