"""LocalBackend: the in-process Backend used by driver tests and notebooks without Spark."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from cerebro_spark.backend import LocalBackend, TaskRequest, TaskResult
from cerebro_spark.errors import BackendError, InvalidParamError

TASKS = "cerebro_spark.testing.tasks"


@pytest.fixture
def backend() -> Iterator[LocalBackend]:
    with LocalBackend(num_workers=2) as b:
        yield b  # type: ignore[misc]


def _result(backend: LocalBackend) -> TaskResult:
    result = backend.next_result(timeout=10)
    assert result is not None
    return result


def test_echo_on_every_worker(backend: LocalBackend) -> None:
    for worker in range(2):
        backend.submit(worker, TaskRequest(worker, f"{TASKS}:echo", {"value": {"w": worker}}))
    results = sorted((_result(backend) for _ in range(2)), key=lambda r: r.task_id)
    assert [(r.ok, r.worker_id, r.value) for r in results] == [(True, 0, {"w": 0}), (True, 1, {"w": 1})]
    assert all(r.started_at <= r.finished_at for r in results)


def test_whoami_reports_the_context(backend: LocalBackend) -> None:
    backend.submit(1, TaskRequest(1, f"{TASKS}:whoami"))
    value = _result(backend).value
    assert (value["worker_id"], value["num_workers"], value["cores"]) == (1, 2, 1)


def test_failures_are_results_and_the_worker_goes_on(backend: LocalBackend) -> None:
    backend.submit(0, TaskRequest(1, f"{TASKS}:fail", {"message": "boom"}))
    backend.submit(0, TaskRequest(2, f"{TASKS}:no_such_task"))
    backend.submit(0, TaskRequest(3, f"{TASKS}:echo", {"value": "still here"}))
    failed, missing, ok = (_result(backend) for _ in range(3))
    assert (failed.ok, failed.error) == (False, "ValueError: boom")
    assert "Traceback" in failed.traceback and "raise ValueError(message)" in failed.traceback
    assert not missing.ok and "has no function 'no_such_task'" in missing.error
    assert (ok.ok, ok.value) == (True, "still here")


def test_context_persists_per_worker(backend: LocalBackend) -> None:
    for task_id, worker in enumerate([0, 0, 1, 0]):
        backend.submit(worker, TaskRequest(task_id, f"{TASKS}:count_calls"))
    counts = {r.task_id: (r.worker_id, r.value) for r in (_result(backend) for _ in range(4))}
    assert counts == {0: (0, 1), 1: (0, 2), 2: (1, 1), 3: (0, 3)}


def test_tasks_run_in_order_per_worker(backend: LocalBackend) -> None:
    for task_id in range(50):
        backend.submit(task_id % 2, TaskRequest(task_id, f"{TASKS}:count_calls"))
    results = [_result(backend) for _ in range(50)]
    for worker in range(2):
        mine = [r for r in results if r.worker_id == worker]
        assert [r.task_id for r in mine] == list(range(worker, 50, 2))
        assert [r.value for r in mine] == list(range(1, 26))


def test_next_result_times_out_with_none(backend: LocalBackend) -> None:
    assert backend.next_result(timeout=0.01) is None


def test_shutdown_joins_threads_and_is_idempotent() -> None:
    backend = LocalBackend(num_workers=3)
    backend.start()
    with pytest.raises(BackendError, match="already started"):
        backend.start()
    assert len([t for t in threading.enumerate() if t.name.startswith("cerebro-local-worker")]) == 3
    backend.shutdown()
    backend.shutdown()
    assert not [t for t in threading.enumerate() if t.name.startswith("cerebro-local-worker")]
    with pytest.raises(BackendError, match="not running"):
        backend.submit(0, TaskRequest(1, f"{TASKS}:echo", {"value": 1}))

    backend.start()  # a fresh start gets fresh contexts
    backend.submit(2, TaskRequest(1, f"{TASKS}:count_calls"))
    assert _result(backend).value == 1
    backend.shutdown()


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, None])
def test_num_workers_is_validated(bad: object) -> None:
    with pytest.raises(
        InvalidParamError, match=rf"num_workers must be an int >= 1. Received: num_workers={bad!r}"
    ):
        LocalBackend(num_workers=bad).start()  # type: ignore[arg-type]


def test_submit_checks_its_arguments(backend: LocalBackend) -> None:
    with pytest.raises(
        InvalidParamError, match=r"worker_id must be an int in \[0, 1\]. Received: worker_id=2"
    ):
        backend.submit(2, TaskRequest(1, f"{TASKS}:echo", {"value": 1}))
    with pytest.raises(InvalidParamError, match="request must be a TaskRequest. Received: dict"):
        backend.submit(0, {"fn": "x"})  # type: ignore[arg-type]
