"""RayBackend: P long-lived workers, one Ray actor each, driven over the authenticated control plane.

Each worker is an actor (:class:`_CerebroWorker`) holding the resources of one worker
(``num_cpus_per_worker``, ``num_gpus_per_worker``); its one method call runs
:func:`~cerebro_spark.backend._executor_loop.serve` for the whole life of the backend. A driver thread
waits on those calls (:class:`~cerebro_spark.backend.remote.ThreadLaunch`): an actor whose process dies
closes its control connection and ends its call with Ray's error, and either one makes the worker lost
(:class:`~cerebro_spark.backend.base.WorkerLostError`, with Ray's error). Nothing here imports pyspark:
no JVM is started.
"""

from __future__ import annotations

import logging
import math
import queue
from typing import Any

import ray

from cerebro_spark.backend import _executor_loop
from cerebro_spark.backend._control_server import WorkerLost
from cerebro_spark.backend.base import DEFAULT_MAX_RESTARTS
from cerebro_spark.backend.remote import Launch, RemoteBackend, ThreadLaunch
from cerebro_spark.errors import BackendError, InvalidParamError

logger = logging.getLogger(__name__)

_MAX_ERROR_CHARS = 8000
_EPSILON = 1e-9  # Ray's resources are floats (fractional CPUs and GPUs)
_CONNECT_HINT = (
    "Check that the Ray nodes can reach the driver's address (RayBackend's bind_address): by default "
    "this node's IP on a Ray cluster, 127.0.0.1 when every Ray node is this machine."
)


class _CerebroWorker:
    """One RayBackend worker: an actor whose :meth:`serve` runs the executor loop until the driver says
    Shutdown (or closes the connection)."""

    def serve(
        self,
        address: tuple[str, int],
        secret: bytes,
        worker_id: int,
        num_workers: int,
        cores: int,
        heartbeat_s: float,
        warm_up: str | None,
    ) -> int:
        """Serve the driver at ``address`` as worker ``worker_id``, with the GPUs Ray gave this actor."""
        gpus = tuple(str(gpu) for gpu in ray.get_gpu_ids())
        _executor_loop.serve(
            address,
            secret,
            worker_id=worker_id,
            num_workers=num_workers,
            cores=cores,
            heartbeat_s=heartbeat_s,
            gpus=gpus,
            connect_hint=_CONNECT_HINT,
            warm_up=warm_up,
        )
        return worker_id


def _describe_error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text if len(text) <= _MAX_ERROR_CHARS else text[:_MAX_ERROR_CHARS] + " [...]"


def _kill(actors: list[Any]) -> None:
    """Kill every actor (each one's process ends; Ray frees its resources). Never raises."""
    for actor in actors:
        try:
            ray.kill(actor, no_restart=True)
        except Exception:  # already gone, or Ray was shut down before the backend
            logger.debug("could not kill Ray actor %s", actor, exc_info=True)


class _RayActors(ThreadLaunch):
    """The actors of one start: a driver thread waits on their :meth:`_CerebroWorker.serve` calls;
    :meth:`stop` kills every actor, also those whose call returned (an idle actor still holds its CPUs
    and GPUs).

    The first call that fails (its actor died: ``ActorDiedError``; ``serve`` raised) ends the wait with
    Ray's error, after posting :class:`WorkerLost` for its worker: the dead actor's control connection
    closes at the same moment, and whichever of the two the backend reads first names the same worker.
    """

    def __init__(self, actors: list[Any], refs: list[Any], events: queue.Queue[object]) -> None:
        self._actors = actors
        self._refs = refs
        self._events = events
        super().__init__(
            self._wait,
            self._kill_all,
            events,
            name="cerebro-ray-actors",
            describe_error=lambda exc: str(exc) if isinstance(exc, BackendError) else _describe_error(exc),
        )

    def _wait(self) -> None:
        """Return once every call returned; raise (after posting the loss) at the first that failed."""
        worker_ids = {ref: i for i, ref in enumerate(self._refs)}
        pending = list(self._refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                try:
                    ray.get(ref)
                except Exception as exc:
                    worker_id = worker_ids[ref]
                    self.error = f"the actor of worker {worker_id} failed: {_describe_error(exc)}"
                    died = isinstance(exc, ray.exceptions.RayActorError)
                    how = "died" if died else "call failed"
                    self._events.put(WorkerLost(worker_id, f"its Ray actor {how}: {type(exc).__name__}"))
                    raise BackendError(self.error) from exc

    def _kill_all(self) -> None:
        _kill(self._actors)

    def stop(self, grace_s: float, cancel_wait_s: float) -> None:
        """Wait ``grace_s`` seconds for the actors' calls to return, cancel them if not; then kill every
        actor."""
        try:
            super().stop(grace_s, cancel_wait_s)
        finally:
            self._kill_all()


class RayBackend(RemoteBackend):
    """Run tasks on ``num_workers`` long-lived Python workers, one Ray actor each.

    The backend uses the Ray this process is connected to (``ray.is_initialized()``): call
    ``ray.init(...)`` first to choose the cluster, runtime environment, namespace and logging. Otherwise
    the first use calls ``ray.init(address=address)`` (``address`` None: a new local Ray, or the cluster
    that ``RAY_ADDRESS`` names, as ``ray.init`` does); that Ray stays up after :meth:`shutdown`, for later
    searches, until ``ray.shutdown()`` or the end of the process.

    :meth:`start` opens an authenticated TCP server on the driver and creates one actor per worker, each
    holding ``num_cpus_per_worker`` CPUs and ``num_gpus_per_worker`` GPUs (``max_restarts=0``: a worker
    is relaunched by the search, never by Ray, so that every worker of a search starts together). Each
    actor connects back, proves it holds this run's secret, and runs :class:`TaskRequest`s until
    :meth:`shutdown`, which kills every actor. Ray places the actors by their resources (no placement
    group): several per node where they fit. An actor whose process dies (OOM, a node lost) is a lost
    worker (:class:`~cerebro_spark.backend.base.WorkerLostError`, with Ray's error): the search
    relaunches every worker (new actors) and retries the units in flight, up to ``max_restarts`` times.

    Every Ray node must be able to import ``cerebro_spark`` and what the tasks run (install it there, or
    pass a ``runtime_env`` to ``ray.init``), and reach the driver's control server.

    Parameters
    ----------
    num_workers : int
        Number of workers (P): actors running at once.
    num_cpus_per_worker : float, default 1
        CPUs each actor holds (Ray's ``num_cpus``); the worker's task threads are its whole part (at
        least 1).
    num_gpus_per_worker : float, default 0
        GPUs each actor holds (Ray's ``num_gpus``; a fraction shares a GPU). The worker's tasks see the
        GPUs Ray assigned (``ray.get_gpu_ids()``, as ``WorkerContext.gpus``).
    address : str, optional
        The Ray cluster to connect to when this process is not connected yet (``ray.init(address=...)``:
        ``"auto"``, ``"ray://host:10001"``...); ignored when Ray is already initialized.
    start_timeout_s : float, default 300
        How long :meth:`start` waits for every worker to connect (actors wait for free resources).
    heartbeat_s : float, default 5
        How often each worker sends a heartbeat (see :meth:`last_seen`).
    bind_address : str, optional
        Address of the driver that the Ray nodes can reach. By default ``127.0.0.1`` when every Ray node
        is this machine, else this node's IP (``ray.util.get_node_ip_address()``).
    worker_timeout_s : float or None, default 120
        A worker that sends nothing (not even a heartbeat) for this long is treated as lost, like a dead
        one. None: never.
    max_restarts : int, default 3
        How many times a search relaunches the workers (new actors) after losing one; the units in
        flight are retried. One loss more and the search fails with a BackendError naming the worker.

    Raises
    ------
    InvalidParamError
        If ``num_workers`` is not an int >= 1, or the resources per worker are not numbers (CPUs > 0,
        GPUs >= 0).

    Notes
    -----
    :meth:`start` (and :attr:`num_workers`) checks the cluster's resources (``ray.cluster_resources()``):
    a BackendError if it cannot hold ``num_workers`` actors at once, or one node cannot hold one actor.
    An autoscaling cluster is checked as it is now. Resources held by others (another search, Ray Data)
    make the actors wait, up to ``start_timeout_s``.

    The run's secret travels to the actors as an argument of their call: whoever can run code on the
    Ray cluster can read it, as they can run code in the workers anyway.

    Examples
    --------
    >>> import ray  # doctest: +SKIP
    >>> ray.init(address="auto")  # doctest: +SKIP
    >>> backend = RayBackend(num_workers=4, num_gpus_per_worker=1)  # doctest: +SKIP
    >>> search = GridSearch(backend=backend, store=Store.create("s3://bucket/cerebro"), ...)  # doctest: +SKIP
    """

    _engine = "the Ray actors"

    def __init__(
        self,
        num_workers: int,
        *,
        num_cpus_per_worker: float = 1,
        num_gpus_per_worker: float = 0,
        address: str | None = None,
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
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
            raise InvalidParamError(
                f"RayBackend's num_workers must be an int >= 1. Received: num_workers={num_workers!r}"
            )
        if not _is_number(num_cpus_per_worker) or not num_cpus_per_worker > 0:
            raise InvalidParamError(
                "RayBackend's num_cpus_per_worker must be a number > 0 (Ray's num_cpus of each actor). "
                f"Received: num_cpus_per_worker={num_cpus_per_worker!r}"
            )
        if not _is_number(num_gpus_per_worker) or not num_gpus_per_worker >= 0:
            raise InvalidParamError(
                "RayBackend's num_gpus_per_worker must be a number >= 0 (Ray's num_gpus of each actor). "
                f"Received: num_gpus_per_worker={num_gpus_per_worker!r}"
            )
        if address is not None and not isinstance(address, str):
            raise InvalidParamError(
                "RayBackend's address must be None or a Ray address (str, as ray.init takes). "
                f"Received: address={address!r}"
            )
        self._n = num_workers
        self._cpus = num_cpus_per_worker
        self._gpus = num_gpus_per_worker
        self._ray_address = address
        self._cluster: str | None = None  # the GCS address of the Ray we use, once connected

    def describe(self) -> str:
        """The Ray cluster, the workers' resources and the control plane's address."""
        n = self._num_workers if self._num_workers is not None else self._requested_workers
        cluster = self._cluster or self._ray_address or "not connected"
        address = "not started"
        if self._server is not None:
            host, port = self._server.address
            address = f"{host}:{port}"
        return (
            f"RayBackend(ray={cluster}, num_workers={n}, num_cpus_per_worker={self._cpus:g}, "
            f"num_gpus_per_worker={self._gpus:g}, address={address})"
        )

    # -- what RemoteBackend asks of an engine --------------------------------------------------

    def _resolve_num_workers(self) -> int:
        n = self._n
        self._connect()
        self._check_resources(n)
        return n

    def _bind_host(self) -> str:
        if self._bind_address:
            return self._bind_address
        self._connect()
        return "127.0.0.1" if _every_node_is_here() else _node_ip()

    def _worker_address(self, bound: tuple[str, int]) -> tuple[str, int]:
        host, port = bound
        if host in ("0.0.0.0", "::", "") and not _every_node_is_here():  # every interface: this node's IP
            host = _node_ip()
        return super()._worker_address((host, port))

    def _launch(self, n: int, address: tuple[str, int], secret: bytes, events: queue.Queue[object]) -> Launch:
        worker = ray.remote(num_cpus=self._cpus, num_gpus=self._gpus, max_restarts=0)(_CerebroWorker)
        cores = max(1, int(self._cpus))
        actors: list[Any] = []
        try:
            for _ in range(n):
                actors.append(worker.remote())
            refs = [
                actor.serve.remote(address, secret, i, n, cores, self._heartbeat_s, self._warm_up)
                for i, actor in enumerate(actors)
            ]
        except BaseException:
            _kill(actors)
            raise
        logger.info(
            "created %d Ray actors (%g CPUs, %g GPUs each) serving %s:%d",
            n,
            self._cpus,
            self._gpus,
            *address,
        )
        return _RayActors(actors, refs, events)

    def _reach_hint(self, n: int) -> str:
        need = f"{n} x {self._cpus:g} CPUs" + (f" and {n} x {self._gpus:g} GPUs" if self._gpus else "")
        return (
            "Check that the Ray nodes can reach the driver (bind_address), that they can import "
            "cerebro_spark (installed there, or in ray.init's runtime_env), and that the cluster has "
            f"{need} free at once (ray.available_resources(): actors wait for free resources)."
        )

    # -- Ray -------------------------------------------------------------------------------------

    def _connect(self) -> None:
        """Use the running Ray, else ``ray.init(address=...)``."""
        if not ray.is_initialized():
            logger.info("RayBackend: ray.init(address=%r)", self._ray_address)
            try:
                ray.init(address=self._ray_address)
            except Exception as exc:
                raise BackendError(
                    f"RayBackend could not start or reach Ray (ray.init(address={self._ray_address!r})): "
                    f"{exc}. Pass address= a running cluster's address, or call ray.init(...) first."
                ) from exc
        if self._cluster is None:
            try:
                self._cluster = str(ray.get_runtime_context().gcs_address)
            except Exception:  # Ray Client sessions may not tell
                self._cluster = self._ray_address or "connected"

    def _check_resources(self, n: int) -> None:
        """BackendError if the cluster cannot hold ``n`` actors at once, or no node can hold one."""
        total: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
        nodes = [node.get("Resources", {}) for node in _alive_nodes()]
        for kind, each, param in (("CPU", self._cpus, "num_cpus_per_worker"),
                                  ("GPU", self._gpus, "num_gpus_per_worker")):  # fmt: skip
            if not each:
                continue
            have = float(total.get(kind, 0.0))
            if n * each > have + _EPSILON:
                fits = math.floor(have / each + _EPSILON)
                raise BackendError(
                    f"RayBackend needs num_workers={n} actors of {param}={each:g} {kind}s each, "
                    f"{n * each:g} {kind}s at once, but the Ray cluster has {have:g} {kind}s "
                    f"(ray.cluster_resources()). Pass num_workers <= {fits}, a smaller {param}, or add nodes."
                )
            largest = max((float(r.get(kind, 0.0)) for r in nodes), default=have)
            if each > largest + _EPSILON:
                raise BackendError(
                    f"RayBackend's actors need {param}={each:g} {kind}s each, but no Ray node has more "
                    f"than {largest:g} {kind}s: an actor runs on one node. Pass {param} <= {largest:g}."
                )


def _is_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _every_node_is_here() -> bool:
    """Whether every alive Ray node is this machine (a local Ray): the loopback address reaches them."""
    addresses = {node.get("NodeManagerAddress") for node in _alive_nodes()}
    return bool(addresses) and addresses <= {_node_ip(), "127.0.0.1", "localhost"}


def _node_ip() -> str:
    """This node's IP, as Ray sees it."""
    return str(ray.util.get_node_ip_address())  # type: ignore[no-untyped-call]


def _alive_nodes() -> list[dict[str, Any]]:
    """The Ray cluster's alive nodes (``ray.nodes()``)."""
    nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
    return [node for node in nodes if node.get("Alive")]
