"""The driver's writes to the Store, off the critical path: in order, on one background thread.

After every unit the driver writes a checkpoint (the model's new state), appends to the journal and,
at an epoch's end, to the model's history. On an object store each is a round trip of tens of
milliseconds; done inline they would delay the next dispatch. :class:`BackgroundStore` queues them and
one thread performs them **in the order they were made**, so the Store is always a prefix of what the
driver wrote: a unit is in the journal only after its checkpoint is durable, and an epoch in a history
only after its units. A driver that crashes loses at most the writes still queued; a resume (which
reads the journal) retrains exactly those units.

Reads wait until the queued writes are done, so the driver reads what it wrote. A write that fails is
raised by the next call on the driver's thread (and the writes queued after it are dropped).
"""

from __future__ import annotations

import contextlib
import io
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from typing import IO, Any

from cerebro_spark.store.base import Store

logger = logging.getLogger(__name__)

_STOP = object()


class BackgroundStore(Store):
    """``store`` with its writes queued for a background thread (see the module's docstring).

    Only the driver's thread uses it; tasks get ``target``, the plain Store.

    Parameters
    ----------
    store : Store
        Where the writes go.
    """

    def __init__(self, store: Store) -> None:
        self.target = store
        self._queue: queue.Queue[Any] = queue.Queue()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # ---- the queue -----------------------------------------------------------------------------------

    def _submit(self, write: Callable[[], None]) -> None:
        self._raise_failure()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="cerebro-store-writer", daemon=True)
                self._thread.start()
        self._queue.put(write)

    def _work(self) -> None:
        while True:
            write = self._queue.get()
            try:
                if write is _STOP:
                    return
                if self._error is None:  # after a failure, later writes are dropped (their order is lost)
                    write()
            except BaseException as exc:  # noqa: BLE001 - handed to the driver's thread
                self._error = exc
                logger.debug("a queued Store write failed: %s", exc)
            finally:
                self._queue.task_done()

    def flush(self) -> None:
        """Wait until every write queued so far is done; raise the first one that failed."""
        if self._thread is not None:
            self._queue.join()
        self._raise_failure()

    def close(self) -> None:
        """Flush, then stop the thread (a later write starts a new one)."""
        try:
            self.flush()
        finally:
            with self._lock:
                if self._thread is not None and self._thread.is_alive():
                    self._queue.put(_STOP)
                    self._thread.join()
                self._thread = None

    def _raise_failure(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error

    # ---- writes: queued ------------------------------------------------------------------------------

    def write_bytes(self, key: str, data: bytes) -> None:
        self._submit(lambda: self.target.write_bytes(key, data))

    def append_text(self, key: str, text: str) -> None:
        self._submit(lambda: self.target.append_text(key, text))

    def delete(self, key: str, *, recursive: bool = False) -> None:
        self._submit(lambda: self.target.delete(key, recursive=recursive))

    def upload(self, local_path: str, key: str) -> None:
        with open(local_path, "rb") as f:  # the file may be gone by the time the write runs
            data = f.read()
        self.write_bytes(key, data)

    @contextlib.contextmanager
    def atomic_writer(self, key: str) -> Iterator[IO[bytes]]:
        buffer = io.BytesIO()
        yield buffer
        self.write_bytes(key, buffer.getvalue())

    # ---- reads: after the queued writes --------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.target.url

    def exists(self, key: str) -> bool:
        self.flush()
        return self.target.exists(key)

    def read_bytes(self, key: str) -> bytes:
        self.flush()
        return self.target.read_bytes(key)

    def open_read(self, key: str) -> IO[bytes]:
        self.flush()
        return self.target.open_read(key)

    def download(self, key: str, local_path: str) -> None:
        self.flush()
        self.target.download(key, local_path)

    def listdir(self, key: str) -> list[str]:
        self.flush()
        return self.target.listdir(key)

    def local_path(self, key: str) -> str | None:
        self.flush()
        return self.target.local_path(key)

    def __repr__(self) -> str:
        return f"BackgroundStore({self.target!r})"
