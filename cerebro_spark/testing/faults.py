"""Faults on demand for the fake worker tasks: a worker that dies, loses its executor, or hangs, once.

A model whose params hold ``fault`` (one of :data:`FAULTS`) and ``fault_marker`` (a file path)
triggers the fault in its training unit of epoch ``fault_epoch`` (default 1) on partition
``fault_partition`` (default 0), the first time only: the marker file is created first, so the
retried unit trains normally (without a marker, every time). :func:`cerebro_spark.testing.fakes.train` calls :func:`maybe_inject`.
"""

from __future__ import annotations

import os
import signal
from typing import Any

FAULTS = ("exit", "kill_python", "kill_jvm", "hang")
"""``exit``: the task raises SystemExit (LocalBackend: the worker thread dies). ``kill_python``:
SIGKILL to the worker's Python process. ``kill_jvm``: SIGKILL to the executor JVM that runs it
(local-cluster only; refused when that JVM is the driver's). ``hang``: SIGSTOP to the worker's
Python process (its heartbeats stop; Spark kills it when the stage is cancelled)."""


def maybe_inject(params: dict[str, Any], epoch: int, partition: int) -> None:
    """Trigger ``params["fault"]`` if this is its unit and its marker file does not exist yet."""
    fault = params.get("fault")
    if not fault:
        return
    if fault not in FAULTS:
        raise ValueError(f"fault must be one of {FAULTS}. Received: fault={fault!r}")
    if (epoch, partition) != (int(params.get("fault_epoch", 1)), int(params.get("fault_partition", 0))):
        return
    marker = params.get("fault_marker")
    if marker:  # without a marker the fault strikes every time
        try:
            fd = os.open(str(marker), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return  # it happened once already: this is the retry
        with os.fdopen(fd, "w") as f:
            f.write(f"{fault} pid={os.getpid()}\n")
    if fault == "exit":
        raise SystemExit(f"fake worker death in epoch {epoch} on partition {partition}")
    if fault == "kill_python":
        os.kill(os.getpid(), signal.SIGKILL)
    elif fault == "kill_jvm":
        os.kill(executor_jvm_pid(), signal.SIGKILL)
    else:
        os.kill(os.getpid(), signal.SIGSTOP)
    signal.pause()  # wait for the signal to take effect; SIGKILL/SIGSTOP end or freeze us here


def executor_jvm_pid(pid: int | None = None) -> int:
    """The pid of the executor JVM above process ``pid`` (default: this one), from ``/proc``.

    Raises RuntimeError if there is none, or if the JVM found is not an executor (on a ``local``
    master the Python workers hang below the driver's JVM, which must never be killed).
    """
    pid = os.getpid() if pid is None else pid
    while pid > 1:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ppid = int(fields[1])
        with open(f"/proc/{ppid}/cmdline", "rb") as f:
            cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        if "java" in cmdline.split(" ", 1)[0]:
            if "CoarseGrainedExecutorBackend" not in cmdline:
                raise RuntimeError(
                    f"the JVM above this worker (pid {ppid}) is not an executor: {cmdline[:200]}"
                )
            return ppid
        pid = ppid
    raise RuntimeError("no JVM above this worker process")
