"""The control server reports a connected worker that goes silent (no heartbeat) as lost, once."""

from __future__ import annotations

import os
import queue
import socket
import threading

from cerebro_spark.backend import _executor_loop
from cerebro_spark.backend._control_server import ControlServer, WorkerLost, WorkerReady
from cerebro_spark.backend.protocol import Hello, Shutdown, client_handshake, new_secret


def next_event(events: queue.Queue[object], kind: type) -> object:
    while True:
        event = events.get(timeout=20)
        if isinstance(event, kind):
            return event


def test_a_silent_worker_is_lost_and_a_beating_one_is_not() -> None:
    secret, events = new_secret(), queue.Queue()
    server = ControlServer("127.0.0.1", secret, num_workers=2, events=events, worker_timeout_s=3.0)
    beating = threading.Thread(target=_executor_loop.serve, args=(server.address, secret, 0, 2, 1, 0.05))
    beating.start()
    silent = client_handshake(socket.create_connection(server.address), secret)  # authenticates, never beats
    try:
        silent.send(Hello(1, os.getpid(), "test", 1))
        ready = {next_event(events, WorkerReady).hello.worker_id for _ in range(2)}
        assert ready == {0, 1}
        lost = next_event(events, WorkerLost)
        assert (
            lost.worker_id == 1 and "no heartbeat for" in lost.reason and "worker_timeout_s=3" in lost.reason
        )
        assert server.num_connected == 2  # the hung worker stays connected: the backend decides what to do
        assert all(not isinstance(e, WorkerLost) for e in _drain(events, wait_s=1.5))  # reported once only
    finally:
        server.stop_workers(Shutdown())
        beating.join(timeout=20)
        silent.close()
        server.close()


def _drain(events: queue.Queue[object], wait_s: float) -> list[object]:
    got = []
    try:
        while True:
            got.append(events.get(timeout=wait_s))
    except queue.Empty:
        return got
