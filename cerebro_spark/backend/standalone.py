"""StandaloneBackend: workers started by hand on plain machines, which dial the driver.

No cluster manager: on each machine, ``cerebro-worker --driver HOST:PORT --secret-file FILE`` (the
console script of :func:`main`) connects to the driver's control server, takes a free worker id and
runs tasks until the search ends, then waits for the next search. The Store is a folder every
machine mounts (NFS) or an object store. Nothing here imports pyspark: no JVM is started.
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import secrets
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from cerebro_spark.backend import _executor_loop
from cerebro_spark.backend.base import DEFAULT_MAX_RESTARTS
from cerebro_spark.backend.protocol import ANY_WORKER, SECRET_BYTES
from cerebro_spark.backend.remote import Launch, RemoteBackend
from cerebro_spark.errors import AuthenticationError, InvalidParamError

logger = logging.getLogger(__name__)

#: The port a StandaloneBackend listens on, and ``cerebro-worker`` dials, unless told otherwise.
DEFAULT_PORT = 47470

#: Where the shared secret lives unless told otherwise (created, readable by its owner only, if missing).
DEFAULT_SECRET_FILE = "~/.cerebro_spark/worker-secret"

_RETRY_S = 2.0  # how long a worker waits before dialing again a driver that is not (or no longer) there
_HINT = "Is a search with a StandaloneBackend running there (its bind_address and port)?"


def read_secret(path: str | os.PathLike[str], *, create: bool = False) -> bytes:
    """The secret in ``path`` (hex); with ``create``, a new one is written there first if it is missing.

    Raises
    ------
    InvalidParamError
        If the file is missing (and not to be created), unreadable, or does not hold a hex secret of at
        least 16 bytes.
    """
    file = Path(path).expanduser()
    if create and not file.exists():
        file.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(secrets.token_hex(SECRET_BYTES) + "\n")
        logger.info("wrote a new worker secret to %s: give the workers this file", file)
    try:
        text = file.read_text().strip()
        secret = bytes.fromhex(text)
    except (OSError, ValueError) as exc:
        raise InvalidParamError(
            f"secret_file must name a readable file holding a hex secret (StandaloneBackend writes one). "
            f"Received: {str(file)!r} ({exc})."
        ) from exc
    if len(secret) < 16:
        raise InvalidParamError(
            f"secret_file must hold a secret of at least 16 bytes (32 hex digits). Received: {len(secret)} "
            f"bytes in {str(file)!r}."
        )
    return secret


class StandaloneBackend(RemoteBackend):
    """``num_workers`` workers started by hand (``cerebro-worker``), on any machines that reach the driver.

    :meth:`start` listens on ``bind_address:port`` and waits until ``num_workers`` workers have connected
    and proved they hold the secret of ``secret_file``. Workers that connect while all ids are taken are
    refused and dial again later; a worker whose search ends waits for the next one, so the same workers
    serve search after search.

    Parameters
    ----------
    num_workers : int
        Number of workers (P) a search waits for.
    bind_address : str, default '127.0.0.1'
        The address the driver listens on: the loopback address (workers on this machine) unless told
        otherwise; pass this machine's address (or '0.0.0.0') for workers on other machines.
    port : int, default 47470
        The port the driver listens on and workers dial.
    secret_file : str, default '~/.cerebro_spark/worker-secret'
        A file holding the shared secret (hex). Created with a new secret (readable by its owner only)
        if missing; every worker needs a copy (``--secret-file``). Anyone holding it can run code in the
        workers: keep it private.
    start_timeout_s : float, default 300
        How long :meth:`start` waits for the workers.
    heartbeat_s, worker_timeout_s, max_restarts
        As for :class:`~cerebro_spark.backend.spark.SparkBackend`. A relaunch after a lost worker waits
        for workers to connect again (a ``cerebro-worker`` process dials again by itself; one whose
        machine died must be started again).

    Examples
    --------
    On each worker machine (the secret file copied there)::

        cerebro-worker --driver driver-host:47470 --secret-file ~/.cerebro_spark/worker-secret

    On the driver:

    >>> backend = StandaloneBackend(num_workers=4, bind_address="0.0.0.0")  # doctest: +SKIP
    >>> search = GridSearch(backend=backend, store=Store.create("/nfs/cerebro"), ...)  # doctest: +SKIP
    """

    _engine = "the standalone workers"

    def __init__(
        self,
        num_workers: int,
        *,
        bind_address: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        secret_file: str | os.PathLike[str] = DEFAULT_SECRET_FILE,
        start_timeout_s: float = 300.0,
        heartbeat_s: float = 5.0,
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
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port < 65536:
            raise InvalidParamError(
                f"StandaloneBackend's port must be an int in [0, 65535]. Received: port={port!r}"
            )
        self._port = port
        self._secret_file = secret_file
        self._resolve_num_workers()  # a bad num_workers fails here, not at the first search

    @property
    def secret_file(self) -> Path:
        """The file of the secret the workers need."""
        return Path(self._secret_file).expanduser()

    def describe(self) -> str:
        return f"StandaloneBackend(num_workers={self._requested_workers}, address={self._bind_address}:{self._port})"

    def _resolve_num_workers(self) -> int:
        n = self._requested_workers
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InvalidParamError(
                f"StandaloneBackend's num_workers must be an int >= 1. Received: num_workers={n!r}"
            )
        return n

    def _bind_host(self) -> str:
        return self._bind_address or "127.0.0.1"

    def _secret(self) -> bytes:
        return read_secret(self._secret_file, create=True)

    def _launch(
        self, n: int, address: tuple[str, int], secret: bytes, events: queue.Queue[object]
    ) -> Launch | None:
        logger.info(
            "waiting for %d workers at %s:%d: start them with cerebro-worker --driver %s:%d --secret-file %s",
            n,
            *address,
            *address,
            self.secret_file,
        )
        return None

    def _reach_hint(self, n: int) -> str:
        host, port = self._bind_host(), self._port
        return (
            f"Start {n} workers with `cerebro-worker --driver {host}:{port} --secret-file {self.secret_file}` "
            "(on other machines: bind_address= an address they reach, and a copy of the secret file)."
        )


# ---- the worker process -------------------------------------------------------------------------------


def run_worker(
    driver: tuple[str, int],
    secret: bytes,
    *,
    cores: int,
    gpus: tuple[str, ...] = (),
    once: bool = False,
    retry_s: float = _RETRY_S,
) -> None:
    """Serve drivers at ``driver`` one search after another (only one with ``once``); dial again, every
    ``retry_s`` seconds, while no driver is there or all its worker ids are taken."""
    waiting_logged = False
    while True:
        dialed = time.monotonic()
        try:
            _executor_loop.serve(
                driver, secret, ANY_WORKER, 0, cores, gpus=gpus, connect_timeout_s=retry_s, connect_hint=_HINT
            )
        except AuthenticationError:
            raise
        except (ConnectionError, OSError) as exc:
            if not waiting_logged:
                logger.info("no driver admits this worker at %s:%d yet (%s); dialing again", *driver, exc)
                waiting_logged = True
            # at most one dial per retry_s: connecting already waited that long when no driver listens,
            # but a driver that refuses (every id taken) answers at once
            time.sleep(max(0.0, retry_s - (time.monotonic() - dialed)))
            continue
        waiting_logged = False
        if once:
            return
        logger.info("search over: waiting for the next driver at %s:%d", *driver)


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def main(argv: Sequence[str] | None = None) -> int:
    """``cerebro-worker``: one worker of a StandaloneBackend's searches."""
    parser = argparse.ArgumentParser(
        prog="cerebro-worker",
        description="Serve cerebro_spark searches run with a StandaloneBackend: dial the driver, take a "
        "free worker id, run its training tasks; then wait for the next search.",
    )
    parser.add_argument(
        "--driver", type=_address, default=("127.0.0.1", DEFAULT_PORT), help="HOST:PORT of the driver"
    )
    parser.add_argument(
        "--secret-file", default=DEFAULT_SECRET_FILE, help="the driver's secret file (a copy)"
    )
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="threads for training")
    parser.add_argument("--gpus", default="", help="GPU ids this worker uses, e.g. 0 or 0,1 (default: none)")
    parser.add_argument("--once", action="store_true", help="exit after one search")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING...")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        secret = read_secret(args.secret_file)
    except InvalidParamError as exc:
        parser.error(str(exc))
    gpus = tuple(g.strip() for g in args.gpus.split(",") if g.strip())
    try:
        run_worker(args.driver, secret, cores=max(1, args.cores), gpus=gpus, once=args.once)
    except AuthenticationError as exc:
        logger.error("the driver refused this worker's secret: %s", exc)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover (the console script calls main)
    sys.exit(main())
