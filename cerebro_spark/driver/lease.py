"""One driver per run: :class:`RunLease`, a lease file in the Store that a second driver respects.

Two drivers on one run id (a notebook cell run again while ``fit_async`` still trains, two jobs started
with the same ``run_id``) would both append to its journal and write the same checkpoint versions. The
driver that starts a run holds ``runs/<run_id>/lease.json`` (who holds it, and when it last renewed it)
and renews it every :data:`RENEW_S` seconds from a thread of its own; it deletes the file when the run
ends. Another driver refuses to start the run, with :class:`~cerebro_spark.errors.RunInUseError`, while
the lease is live. A lease is stale, and taken over, when it was not renewed for :data:`TTL_S` seconds
(its driver died without ending the run) or when its holder is a process of this host that no longer
exists: a resume after a crash waits for the first at most.

In one process, drivers also register in a process-wide table, so that the common case (two drivers in
one notebook) is refused at once, without relying on the Store. Across processes the check is as good
as the Store's read-after-write: the lease is written, then read back, and the driver that does not
find its own token there backs off.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from typing import Any

from cerebro_spark.errors import RunInUseError
from cerebro_spark.store import layout
from cerebro_spark.store.base import Store

logger = logging.getLogger(__name__)

#: Seconds between renewals of a held lease.
RENEW_S = 10.0
#: A lease not renewed for this long belongs to a driver that is gone (``CEREBRO_LEASE_TTL_S``).
TTL_S = float(os.environ.get("CEREBRO_LEASE_TTL_S", "60"))

_HELD: set[tuple[str, str]] = set()  # (Store URL, run id) of the drivers running in this process
_HELD_LOCK = threading.Lock()


def lease_key(run_id: str) -> str:
    """Where the lease of ``run_id`` lives: ``runs/<run_id>/lease.json``."""
    return f"{layout.run_root(run_id)}/lease.json"


class RunLease:
    """The lease of one run, held from :meth:`acquire` to :meth:`release` (see the module docstring)."""

    def __init__(self, store: Store, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self.token = secrets.token_hex(8)
        self._held = (store.url, run_id)
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def acquire(self) -> None:
        """Take the lease, or raise :class:`RunInUseError` naming who holds it."""
        with _HELD_LOCK:
            if self._held in _HELD:
                raise RunInUseError(
                    f"Run {self.run_id!r} is being trained by another search in this process (Store "
                    f"{self.store.url!r}). Wait for it (SearchHandle.result()) or stop it first; two drivers "
                    "would both write its journal and checkpoints."
                )
            _HELD.add(self._held)
        try:
            self._take()
        except BaseException:
            with _HELD_LOCK:
                _HELD.discard(self._held)
            raise
        self._renewer = threading.Thread(target=self._renew, name=f"cerebro-lease-{self.run_id}", daemon=True)
        self._renewer.start()

    def release(self) -> None:
        """Stop renewing and delete the lease if it is still ours. Idempotent (a second call does not
        touch a lease another driver of this process may hold by then)."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=RENEW_S)
        try:
            if self._holder() == self.token:
                self.store.delete(lease_key(self.run_id))
        except Exception:  # a Store gone at the end: the lease goes stale by itself
            logger.warning("run %s: could not delete its lease", self.run_id, exc_info=True)
        with _HELD_LOCK:
            _HELD.discard(self._held)

    # ---- inside ------------------------------------------------------------------------------------

    def _take(self) -> None:
        current = self._read()
        if current is not None and current.get("token") != self.token and _live(current):
            raise RunInUseError(_in_use_message(self.run_id, current))
        self._write()
        holder = self._read()
        if holder is None or holder.get("token") != self.token:  # another driver wrote it just now
            raise RunInUseError(_in_use_message(self.run_id, holder or {}))

    def _renew(self) -> None:
        while not self._stop.wait(RENEW_S):
            try:
                self._write()
            except Exception:
                logger.warning("run %s: renewing its lease failed", self.run_id, exc_info=True)

    def _write(self) -> None:
        self.store.write_json(
            lease_key(self.run_id),
            {
                "token": self.token,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "renewed_at": time.time(),
            },
        )

    def _read(self) -> dict[str, Any] | None:
        try:
            value = self.store.read_json(lease_key(self.run_id))
        except FileNotFoundError:
            return None
        return value if isinstance(value, dict) else None

    def _holder(self) -> str | None:
        current = self._read()
        return None if current is None else current.get("token")


def _live(lease: dict[str, Any]) -> bool:
    """Whether the driver that wrote ``lease`` may still be running."""
    age = time.time() - float(lease.get("renewed_at", 0.0))
    if age > TTL_S:
        return False
    if lease.get("host") == socket.gethostname():
        try:
            os.kill(int(lease.get("pid", -1)), 0)
        except ProcessLookupError:
            return False  # its process is gone: a crash, then a resume on this host
        except (PermissionError, ValueError, OverflowError):
            pass
    return True


def _in_use_message(run_id: str, lease: dict[str, Any]) -> str:
    age = time.time() - float(lease.get("renewed_at", time.time()))
    return (
        f"Run {run_id!r} is being trained by another driver (pid {lease.get('pid', '?')} on host "
        f"{lease.get('host', '?')!r}, its lease renewed {age:.0f} s ago). Two drivers would both write its "
        f"journal and checkpoints: wait for that one to end, or stop it. A driver that died frees the run "
        f"after {TTL_S:.0f} s without renewing (CEREBRO_LEASE_TTL_S), or at once on the same host."
    )
