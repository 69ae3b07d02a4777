"""The control plane without a JVM: frames, the mutual handshake, and the driver's server with real workers."""

from __future__ import annotations

import logging
import os
import pickle
import queue
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cerebro_spark.backend import _executor_loop, protocol
from cerebro_spark.backend._control_server import ControlServer, WorkerLost, WorkerReady
from cerebro_spark.backend.base import TaskRequest, TaskResult
from cerebro_spark.backend.protocol import (
    Channel,
    Heartbeat,
    Hello,
    Shutdown,
    client_handshake,
    new_secret,
    recv_frame,
    send_frame,
    server_handshake,
)
from cerebro_spark.errors import AuthenticationError, BackendError, InvalidParamError

TASKS = "cerebro_spark.testing.tasks"
KEY = bytes(range(32))  # a session key, as a handshake would derive


class _CreatesFile:
    """Unpickling this creates a file: the proof that something was deserialized."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str, str]]:
        return (open, (str(self.path), "w"))


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def loopback() -> Iterator[Callable[[], tuple[socket.socket, socket.socket]]]:
    """Connected TCP socket pairs over 127.0.0.1 (server side, client side)."""
    listener = socket.create_server(("127.0.0.1", 0))
    made: list[socket.socket] = []

    def connect() -> tuple[socket.socket, socket.socket]:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
        made.extend([client, server])
        return server, client

    yield connect
    for sock in made:
        sock.close()
    listener.close()


def _in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Run ``fn`` in a thread; its return value or exception lands in the dict."""
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["value"] = fn()
        except BaseException as exc:
            out["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    return thread, out


# -- frames ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 1000, 64 * 1024, 8 * 1024 * 1024 + 3])
def test_frame_round_trip(pair: tuple[socket.socket, socket.socket], size: int) -> None:
    a, b = pair
    payload = os.urandom(size)
    sender, out = _in_thread(lambda: send_frame(a, payload))  # large frames exceed the socket buffer
    assert recv_frame(b) == payload
    sender.join()
    assert "error" not in out


def test_frame_survives_partial_writes(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    payload = b"hello, partial world"
    for byte in struct.pack(">I", len(payload)) + payload:
        a.sendall(bytes([byte]))
    assert recv_frame(b) == payload


def test_eof_raises_connection_error(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    a.sendall(struct.pack(">I", 10) + b"12345")  # half a frame, then end of stream
    a.close()
    with pytest.raises(ConnectionError, match="after 5 of 10 bytes"):
        recv_frame(b)


def test_oversized_frames_are_refused(
    pair: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = pair
    a.sendall(struct.pack(">I", protocol.MAX_FRAME_BYTES + 1))
    with pytest.raises(BackendError, match="Refused a frame of 1073741825 bytes"):
        recv_frame(b)
    monkeypatch.setattr(protocol, "MAX_FRAME_BYTES", 100)
    with pytest.raises(BackendError, match="at most 100 bytes. Received: 101 bytes"):
        send_frame(a, b"x" * 101)


# -- handshake ------------------------------------------------------------------------------------


def test_handshake_then_messages(loopback: Callable[[], tuple[socket.socket, socket.socket]]) -> None:
    server_sock, client_sock = loopback()
    secret = new_secret()
    thread, out = _in_thread(lambda: server_handshake(server_sock, secret))
    client = client_handshake(client_sock, secret)
    thread.join()
    server: Channel = out["value"]

    client.send(Hello(worker_id=3, pid=42, host="h", cores=2))
    assert server.recv() == Hello(3, 42, "h", 2)
    request = TaskRequest(7, "m:f", {"x": [1, 2]})
    server.send(request)
    assert client.recv() == request
    server.send(Shutdown())
    assert client.recv() == Shutdown()


def test_large_bytes_travel_out_of_band(pair: tuple[socket.socket, socket.socket]) -> None:
    """A model's state (large bytes, anywhere in a message) is a frame of its own, not copied into the
    pickle; it arrives equal, as a bytearray, and crosses again (the driver's relay) out of band too."""
    a, b = pair
    b.settimeout(10)
    state, small = os.urandom(1 << 20), b"x" * 100
    sent = TaskResult(1, 0, True, {"state": state, "nested": [small, {"again": state}]})
    thread, _ = _in_thread(lambda: Channel(a, KEY, "worker").send(sent))
    frames = [recv_frame(b) for _ in range(6)]  # each frame, then its tag
    thread.join()
    assert struct.unpack(">I", frames[0][:4]) == (2,)  # two buffers follow the pickle
    assert len(frames[0]) < 1024 and bytes(frames[2]) == bytes(frames[4]) == state
    assert {len(frames[i]) for i in (1, 3, 5)} == {32}

    worker, driver = Channel(a, KEY, "worker"), Channel(b, KEY, "driver")
    thread, _ = _in_thread(lambda: worker.send(sent))
    received = driver.recv()
    thread.join()
    assert received == sent
    assert isinstance(received.value["state"], bytearray) and received.value["nested"][0] == small
    relayed = TaskRequest(2, "m:f", {"state": received.value["state"]})
    thread, _ = _in_thread(lambda: driver.send(relayed))
    assert len(recv_frame(a)) < 1024 and len(recv_frame(a)) == 32 and recv_frame(a) == state
    thread.join()


def test_frames_that_fail_their_mac_are_refused_before_unpickling(
    pair: tuple[socket.socket, socket.socket], tmp_path: Path
) -> None:
    """After the handshake, an injected pickle, a replayed frame or a frame reflected back to its
    sender is refused: nothing is unpickled, and the error says why."""
    a, b = pair
    b.settimeout(10)
    worker, driver = Channel(a, KEY, "worker"), Channel(b, KEY, "driver")
    marker = tmp_path / "unpickled"
    send_frame(a, struct.pack(">I", 0) + pickle.dumps(_CreatesFile(marker)))  # injected, with a made-up tag
    send_frame(a, bytes(32))
    with pytest.raises(AuthenticationError, match=r"Frame 0 .* failed its integrity check"):
        driver.recv()
    assert not marker.exists()

    a2, b2 = socket.socketpair()
    b2.settimeout(10)
    with a2, b2:
        worker, driver = Channel(a2, KEY, "worker"), Channel(b2, KEY, "driver")
        worker.send(Heartbeat(0, 1.0))
        frame, tag = recv_frame(b2), recv_frame(b2)
        for _ in range(2):  # the genuine frame, then the same bytes again (a replay)
            send_frame(a2, frame)
            send_frame(a2, tag)
        assert driver.recv() == Heartbeat(0, 1.0)
        with pytest.raises(AuthenticationError, match="failed its integrity check"):
            driver.recv()

    a3, b3 = socket.socketpair()
    b3.settimeout(10)
    with a3, b3:
        driver = Channel(b3, KEY, "driver")
        Channel(a3, KEY, "driver").send(Heartbeat(0, 1.0))  # tagged as the driver's own frame
        with pytest.raises(AuthenticationError, match="failed its integrity check"):
            driver.recv()


def _explode() -> None:
    raise ModuleNotFoundError("No module named 'notebook_cell'")


class _OnlyOnTheDriver:
    """Unpickles nowhere, as a value of a class defined in a notebook's __main__ does on a worker."""

    def __reduce__(self) -> tuple[Callable[[], None], tuple[()]]:
        return (_explode, ())


def test_a_request_the_worker_cannot_unpickle_fails_its_task_not_the_worker(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    from cerebro_spark.backend.base import WorkerContext

    pair[0].settimeout(10)  # a dead worker would leave recv waiting: fail instead
    driver_end, worker_end = Channel(pair[0], KEY, "driver"), Channel(pair[1], KEY, "worker")
    worker, out = _in_thread(lambda: _executor_loop._serve_requests(worker_end, WorkerContext(0, 1, 1)))
    driver_end.send(TaskRequest(7, f"{TASKS}:echo", {"value": _OnlyOnTheDriver()}))
    driver_end.send(TaskRequest(8, f"{TASKS}:echo", {"value": 5}))
    failed, served = driver_end.recv(), driver_end.recv()
    driver_end.send(Shutdown())
    worker.join(timeout=10)
    assert not worker.is_alive() and "error" not in out  # the worker served on, then stopped when told
    assert isinstance(failed, TaskResult) and failed.task_id == 7 and not failed.ok
    assert "cannot unpickle the request of task 7" in failed.error and "notebook_cell" in failed.error
    assert isinstance(served, TaskResult) and served.task_id == 8 and served.ok and served.value == 5


def test_an_oversized_message_is_refused_before_sending_and_fails_its_task(
    pair: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cerebro_spark.backend.base import WorkerContext

    monkeypatch.setattr(protocol, "MAX_FRAME_BYTES", 200_000)
    pair[0].settimeout(10)
    driver_end, worker_end = Channel(pair[0], KEY, "driver"), Channel(pair[1], KEY, "worker")
    with pytest.raises(InvalidParamError, match=r"TaskRequest cannot cross .* 300\d{3} bytes in one piece"):
        driver_end.send(TaskRequest(1, f"{TASKS}:echo", {"value": b"x" * 300_000}))  # nothing sent
    worker, out = _in_thread(lambda: _executor_loop._serve_requests(worker_end, WorkerContext(0, 1, 1)))
    driver_end.send(TaskRequest(2, f"{TASKS}:blob", {"size": 300_000}))
    driver_end.send(TaskRequest(3, f"{TASKS}:blob", {"size": 10}))
    too_large, small = driver_end.recv(), driver_end.recv()
    driver_end.send(Shutdown())
    worker.join(timeout=10)
    assert not worker.is_alive() and "error" not in out
    assert isinstance(too_large, TaskResult) and too_large.task_id == 2 and not too_large.ok
    assert "return value cannot be sent to the driver" in too_large.error
    assert isinstance(small, TaskResult) and small.task_id == 3 and small.value == bytes(10)


def test_wrong_secret_is_refused_on_both_sides(
    loopback: Callable[[], tuple[socket.socket, socket.socket]], caplog: pytest.LogCaptureFixture
) -> None:
    server_sock, client_sock = loopback()
    peer = str(server_sock.getpeername())
    thread, out = _in_thread(lambda: server_handshake(server_sock, new_secret()))
    with caplog.at_level(logging.WARNING, logger="cerebro_spark.backend.protocol"):
        with pytest.raises(AuthenticationError, match="refused this worker"):
            client_handshake(client_sock, new_secret())
        thread.join()
    assert isinstance(out["error"], AuthenticationError)
    assert "does not hold this run's secret" in str(out["error"])
    assert any(peer in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert server_sock.fileno() == -1  # closed


def test_client_checks_the_server(loopback: Callable[[], tuple[socket.socket, socket.socket]]) -> None:
    """An impostor server that cannot prove it holds the secret is refused by the worker."""
    server_sock, client_sock = loopback()

    def impostor() -> None:
        send_frame(server_sock, os.urandom(32))
        recv_frame(server_sock)
        send_frame(server_sock, os.urandom(32))

    thread, _ = _in_thread(impostor)
    with pytest.raises(AuthenticationError, match="failed to prove"):
        client_handshake(client_sock, new_secret())
    thread.join()


@pytest.mark.parametrize("framed", [False, True], ids=["raw", "framed"])
def test_server_never_unpickles_before_auth(
    loopback: Callable[[], tuple[socket.socket, socket.socket]], tmp_path: Path, framed: bool
) -> None:
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(_CreatesFile(control), protocol=5))
    assert control.exists()  # the payload does execute code when it is unpickled

    marker = tmp_path / "marker"
    payload = pickle.dumps(_CreatesFile(marker), protocol=5)
    server_sock, client_sock = loopback()
    client_sock.sendall(struct.pack(">I", len(payload)) + payload if framed else payload)
    with pytest.raises(AuthenticationError):
        server_handshake(server_sock, new_secret(), timeout_s=2.0)
    assert not marker.exists()


def test_silent_peer_times_out(loopback: Callable[[], tuple[socket.socket, socket.socket]]) -> None:
    server_sock, _client_sock = loopback()
    started = time.monotonic()
    with pytest.raises(AuthenticationError, match="timed out"):
        server_handshake(server_sock, new_secret(), timeout_s=0.3)
    assert time.monotonic() - started < 2.0


# -- the driver's server with real worker loops ---------------------------------------------------


@pytest.fixture
def server() -> Iterator[tuple[ControlServer, bytes, queue.Queue[object]]]:
    secret = new_secret()
    events: queue.Queue[object] = queue.Queue()
    srv = ControlServer("127.0.0.1", secret, num_workers=2, events=events, handshake_timeout_s=2.0)
    yield srv, secret, events
    srv.close()


def _start_worker(address: tuple[str, int], secret: bytes, worker_id: int) -> threading.Thread:
    thread = threading.Thread(
        target=_executor_loop.serve,
        args=(address, secret, worker_id, 2, 1, 0.05),
        name=f"test-worker-{worker_id}",
    )
    thread.start()
    return thread


def test_server_runs_tasks_on_worker_loops(
    server: tuple[ControlServer, bytes, queue.Queue[object]], tmp_path: Path
) -> None:
    srv, secret, events = server
    workers = [_start_worker(srv.address, secret, i) for i in range(2)]
    ready = {events.get(timeout=10).hello.worker_id for _ in range(2)}  # type: ignore[attr-defined]
    assert ready == {0, 1}

    # an unauthenticated peer sending a pickle is refused; the marker never appears; the server goes on
    marker = tmp_path / "marker"
    with socket.create_connection(srv.address) as rogue:
        payload = pickle.dumps(_CreatesFile(marker), protocol=5)
        rogue.sendall(struct.pack(">I", len(payload)) + payload)
        assert rogue.recv(1024)  # the server's challenge ...
        assert rogue.recv(1024) == b""  # ... then it hung up

    for task_id, fn, kwargs in [(1, "echo", {"value": "a"}), (2, "count_calls", {}), (3, "count_calls", {})]:
        srv.send(1, TaskRequest(task_id, f"cerebro_spark.testing.tasks:{fn}", kwargs))
    srv.send(0, TaskRequest(4, "cerebro_spark.testing.tasks:fail", {"message": "boom"}))
    results = {r.task_id: r for r in (events.get(timeout=10) for _ in range(4)) if isinstance(r, TaskResult)}
    assert [results[i].value for i in (1, 2, 3)] == ["a", 1, 2]
    assert (
        not results[4].ok and "ValueError: boom" in results[4].error and "Traceback" in results[4].traceback
    )
    assert not marker.exists()

    # values that cannot be pickled: refused on the driver, reported as a failed task on the worker
    with pytest.raises(InvalidParamError, match="A TaskRequest cannot cross the control plane"):
        srv.send(0, TaskRequest(9, f"{TASKS}:echo", {"value": lambda: 1}))
    srv.send(0, TaskRequest(10, f"{TASKS}:unpicklable"))
    unsent = events.get(timeout=10)
    assert isinstance(unsent, TaskResult) and unsent.task_id == 10 and not unsent.ok
    assert "return value cannot be sent to the driver" in unsent.error

    first = srv.last_seen(0)
    assert first is not None
    srv.send(
        0, TaskRequest(5, "cerebro_spark.testing.tasks:block_until_file", {"path": "/x", "timeout_s": 0.3})
    )
    assert isinstance(events.get(timeout=10), TaskResult)
    assert (srv.last_seen(0) or 0) > first  # heartbeats (every 0.05 s) and the result

    srv.stop_workers(Shutdown())
    for worker in workers:
        worker.join(timeout=10)
        assert not worker.is_alive()
    srv.close()
    assert events.empty()  # expected disconnects are not failures
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(srv.address, timeout=2).close()


def test_server_reports_a_lost_worker_and_drops_duplicates(
    server: tuple[ControlServer, bytes, queue.Queue[object]], caplog: pytest.LogCaptureFixture
) -> None:
    srv, secret, events = server
    sock = socket.create_connection(srv.address)
    channel = client_handshake(sock, secret)
    channel.send(Hello(1, os.getpid(), "h", 1))
    assert isinstance(events.get(timeout=10), WorkerReady)

    with caplog.at_level(logging.WARNING):
        dup = client_handshake(socket.create_connection(srv.address), secret)
        dup.send(Hello(1, os.getpid(), "h", 1))
        with pytest.raises((ConnectionError, OSError)):
            dup.recv()  # the server closed the duplicate
    assert "dropped worker id 1" in caplog.text

    channel.close()
    lost = events.get(timeout=10)
    assert isinstance(lost, WorkerLost) and lost.worker_id == 1
    with pytest.raises(BackendError, match="Worker 1 is not connected"):
        srv.send(1, Shutdown())


def test_connections_that_do_not_authenticate_are_capped_and_their_threads_forgotten() -> None:
    events: queue.Queue[object] = queue.Queue()
    srv = ControlServer("127.0.0.1", new_secret(), num_workers=1, events=events, handshake_timeout_s=30.0,
                        max_pending=2)  # fmt: skip
    try:
        silent = [socket.create_connection(srv.address) for _ in range(2)]
        for sock in silent:
            sock.settimeout(10)
            assert len(recv_frame(sock)) == 32  # each holds a slot: it got its challenge
        with socket.create_connection(srv.address) as third:
            third.settimeout(10)
            assert third.recv(1024) == b""  # over the cap: closed at once, no thread, no challenge
        for sock in silent:
            sock.close()
        for _ in range(20):  # peers that answer the challenge wrongly, one after the other
            for thread in list(srv._threads):  # the connection threads before this one end first
                if thread is not srv._accept_thread:
                    thread.join(timeout=10)
            with socket.create_connection(srv.address) as peer:
                peer.settimeout(10)
                send_frame(peer, bytes(64) if len(recv_frame(peer)) == 32 else b"")
                assert recv_frame(peer) == b""  # refused
        assert len(srv._threads) <= 3  # the accept thread and the last ones: finished ones are forgotten
    finally:
        srv.close()
