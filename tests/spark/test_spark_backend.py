"""SparkBackend on a real local Spark: a barrier stage of long-lived workers behind an authenticated socket."""

from __future__ import annotations

import os
import pickle
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cerebro_spark.backend import SparkBackend, TaskRequest, TaskResult
from cerebro_spark.backend import remote as remote_module
from cerebro_spark.backend.protocol import client_handshake, new_secret
from cerebro_spark.errors import AuthenticationError, BackendError, InvalidParamError

pytestmark = pytest.mark.spark

TASKS = "cerebro_spark.testing.tasks"


class _CreatesFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (str(self.path), "w"))


def _run(backend: SparkBackend, worker: int, fn: str, **kwargs: Any) -> TaskResult:
    backend.submit(worker, TaskRequest(int(time.monotonic_ns()), f"{TASKS}:{fn}", kwargs))
    result = backend.next_result(timeout=60)
    assert result is not None
    return result


def _backend_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("cerebro-")]


def _assert_stopped(spark: Any, port: int) -> None:
    assert not _backend_threads()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert spark.sparkContext.statusTracker().getActiveJobsIds() == []


@pytest.fixture(scope="class")
def backend(spark: Any) -> Iterator[SparkBackend]:
    """One backend for the tests of a class: it holds both task slots of local[2] while it runs."""
    b = SparkBackend(spark, num_workers=2, heartbeat_s=0.2)
    b.start()
    yield b
    b.shutdown()


class TestRunningBackend:
    """Tests that share one running backend."""

    def test_whoami_two_distinct_long_lived_workers(self, backend: SparkBackend, spark: Any) -> None:
        seen = [_run(backend, worker, "whoami").value for worker in (0, 1)]
        assert {v["worker_id"] for v in seen} == {0, 1}
        assert len({v["pid"] for v in seen}) == 2 and os.getpid() not in {v["pid"] for v in seen}
        assert all(v["TF_NUM_INTRAOP_THREADS"] == "1" and v["cores"] == 1 for v in seen)
        master = spark.sparkContext.master
        assert f"SparkBackend(master={master}, num_workers=2, address=127.0.0.1:" in backend.describe()

    def test_context_lives_across_tasks(self, backend: SparkBackend) -> None:
        first, second = _run(backend, 1, "count_calls"), _run(backend, 1, "count_calls")
        assert second.value == first.value + 1  # (the process's cache may hold calls of earlier tests)
        assert (second.worker_id, second.ok) == (1, True)

    def test_failing_task_is_reported_and_the_worker_goes_on(self, backend: SparkBackend) -> None:
        failed = _run(backend, 0, "fail", message="boom")
        assert (failed.ok, failed.error, failed.worker_id) == (False, "ValueError: boom", 0)
        assert "Traceback" in failed.traceback and "raise ValueError(message)" in failed.traceback
        assert _run(backend, 0, "echo", value=[1, "two"]).value == [1, "two"]

    def test_heartbeats_are_tracked(self, backend: SparkBackend) -> None:
        before = backend.last_seen(0)
        assert before is not None
        assert _run(backend, 0, "block_until_file", path="/nonexistent", timeout_s=0.5).value is False
        assert (backend.last_seen(0) or 0.0) > before

    def test_intruders_are_refused_and_the_backend_keeps_working(
        self, backend: SparkBackend, tmp_path: Path
    ) -> None:
        port = int(backend.describe().rsplit(":", 1)[1].rstrip(")"))
        with pytest.raises(AuthenticationError, match="refused"):
            client_handshake(socket.create_connection(("127.0.0.1", port)), new_secret())

        marker = tmp_path / "marker"
        payload = pickle.dumps(_CreatesFile(marker), protocol=5)
        with socket.create_connection(("127.0.0.1", port)) as rogue:
            rogue.sendall(struct.pack(">I", len(payload)) + payload)
            while rogue.recv(4096):  # the challenge, then the server hangs up
                pass
        assert not marker.exists()
        assert _run(backend, 1, "echo", value="still serving").value == "still serving"

    def test_bad_arguments(self, backend: SparkBackend) -> None:
        with pytest.raises(
            InvalidParamError, match=r"worker_id must be an int in \[0, 1\]. Received: worker_id=5"
        ):
            backend.submit(5, TaskRequest(1, f"{TASKS}:echo", {"value": 1}))
        with pytest.raises(BackendError, match="already started"):
            backend.start()


def test_each_worker_runs_the_warm_up_in_a_thread_of_its_own(spark: Any) -> None:
    b = SparkBackend(spark, num_workers=2, heartbeat_s=0.2)
    b.set_warm_up("cerebro_spark.testing.tasks:warm_up_marker")
    assert not b.is_running
    with b:
        assert b.is_running
        for worker in (0, 1):
            b.submit(
                worker,
                TaskRequest(10 + worker, "cerebro_spark.testing.tasks:wait_for_warm_up", {"timeout_s": 60}),
            )
        threads = [b.next_result(timeout=90) for _ in range(2)]
    assert not b.is_running
    assert [r.value for r in threads] == ["cerebro-warm-up", "cerebro-warm-up"]


def test_too_many_workers_fails_fast(spark: Any) -> None:
    started = time.monotonic()
    with pytest.raises(BackendError, match=r"num_workers=3 .* only 2 task slots .* barrier stage"):
        SparkBackend(spark, num_workers=3).start()
    assert time.monotonic() - started < 5
    assert spark.sparkContext.statusTracker().getActiveJobsIds() == []
    with pytest.raises(InvalidParamError, match="num_workers must be an int >= 1 .* Received: num_workers=0"):
        SparkBackend(spark, num_workers=0).start()
    with pytest.raises(BackendError, match="cannot listen on '192.0.2.1'.*Pass bind_address="):
        SparkBackend(spark, num_workers=1, bind_address="192.0.2.1").start()  # not an address of this machine
    assert not _backend_threads()


def test_shutdown_then_restart_then_keyboard_interrupt(spark: Any) -> None:
    b = SparkBackend(spark)  # num_workers from defaultParallelism (2)
    b.start()
    calls = _run(b, 0, "count_calls").value
    assert b.num_workers == 2 and _run(b, 0, "count_calls").value == calls + 1
    port = int(b.describe().rsplit(":", 1)[1].rstrip(")"))
    b.shutdown()
    b.shutdown()  # idempotent
    _assert_stopped(spark, port)
    with pytest.raises(BackendError, match="not running"):
        b.submit(0, TaskRequest(1, f"{TASKS}:echo", {"value": 1}))

    with pytest.raises(KeyboardInterrupt), b:  # a second start launches a new stage in reused processes
        port = int(b.describe().rsplit(":", 1)[1].rstrip(")"))
        assert _run(b, 0, "count_calls").value >= 1  # whichever process worker 0 runs in now
        b.submit(1, TaskRequest(2, f"{TASKS}:echo", {"value": 1}))
        raise KeyboardInterrupt
    _assert_stopped(spark, port)


def test_shutdown_cancels_a_busy_worker(spark: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(remote_module, "SHUTDOWN_WAIT_S", 1.0)
    b = SparkBackend(spark, num_workers=2)
    b.start()
    port = int(b.describe().rsplit(":", 1)[1].rstrip(")"))
    b.submit(
        0, TaskRequest(1, f"{TASKS}:block_until_file", {"path": str(tmp_path / "never"), "timeout_s": 600})
    )
    started = time.monotonic()
    b.shutdown()
    assert time.monotonic() - started < 20
    _assert_stopped(spark, port)


def test_a_crashed_worker_is_named_with_sparks_error(spark: Any) -> None:
    b = SparkBackend(spark, num_workers=2)
    b.start()
    try:
        b.submit(1, TaskRequest(1, f"{TASKS}:crash", {"code": 3}))
        with pytest.raises(
            BackendError, match=r"(?s)Worker 1 was lost .*The Spark job failed: .*Python worker exited"
        ):
            b.next_result(timeout=60)
        with pytest.raises(BackendError, match="Worker 1 was lost"):
            b.next_result(timeout=1)  # the failure sticks
    finally:
        b.shutdown()
    assert spark.sparkContext.statusTracker().getActiveJobsIds() == []
