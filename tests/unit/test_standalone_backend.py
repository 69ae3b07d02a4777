"""StandaloneBackend: `cerebro-worker` processes started on loopback serve a search (fake tasks, no Spark,
no TensorFlow), survive a killed worker with a spare one, and refuse a wrong secret."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cerebro_spark import LocalBackend, StandaloneBackend
from cerebro_spark.backend.standalone import main as worker_main
from cerebro_spark.backend.standalone import read_secret
from cerebro_spark.errors import BackendError, InvalidParamError
from cerebro_spark.search import hp_choice
from cerebro_spark.testing.fakes import fake_driver


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Workers:
    """``cerebro-worker`` processes (``python -m``, as the console script runs it) on loopback."""

    def __init__(self, port: int, secret_file: Path) -> None:
        self.port, self.secret_file = port, secret_file
        self.processes: list[subprocess.Popen[str]] = []

    def start(self, count: int, *extra: str, secret_file: Path | None = None) -> list[subprocess.Popen[str]]:
        started = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "cerebro_spark.backend.standalone",
                    "--driver",
                    f"127.0.0.1:{self.port}",
                    "--secret-file",
                    str(secret_file or self.secret_file),
                    "--cores",
                    "1",
                    *extra,
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )  # fmt: skip
            for _ in range(count)
        ]
        self.processes.extend(started)
        return started

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            process.wait(timeout=30)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    secret_file = tmp_path / "secret"
    read_secret(secret_file, create=True)
    pool = Workers(free_port(), secret_file)
    try:
        yield pool
    finally:
        pool.stop()


def make_driver(backend, store, space, epochs=2):
    return fake_driver(backend, store, space, epochs=epochs)


def histories(result):
    return {m: [h.to_dict() | {"seconds": 0} for h in r.history] for m, r in result.models.items()}


def test_hand_started_workers_run_the_search_as_in_process_workers_do(workers, store, tmp_path):
    workers.start(2, "--once")
    backend = StandaloneBackend(2, port=workers.port, secret_file=workers.secret_file, start_timeout_s=60)
    result = make_driver(backend, store, {"rate": hp_choice([1.0, 2.0, 3.0])}).run()
    assert not backend.is_running
    for process in workers.processes:  # --once: each exits after the search
        assert process.wait(timeout=30) == 0

    from cerebro_spark.store.base import Store

    local = make_driver(
        LocalBackend(2), Store.create(str(tmp_path / "local")), {"rate": hp_choice([1.0, 2.0, 3.0])}
    )
    expected = local.run()
    assert result.best_model_id == expected.best_model_id
    assert {m: [h.metrics for h in r.history] for m, r in result.models.items()} == {
        m: [h.metrics for h in r.history] for m, r in expected.models.items()
    }


def test_a_killed_worker_is_replaced_by_a_spare_and_its_units_retried(workers, store, tmp_path):
    """Three workers for two ids: the spare is refused, dials again, and takes the place of the worker
    killed in epoch 2 when the backend relaunches."""
    workers.start(3)
    space = {"rate": hp_choice([1.0, 2.0]), "fault": hp_choice(["kill_python", None]),
             "fault_marker": str(tmp_path / "killed"), "fault_epoch": 2, "fault_partition": 1}  # fmt: skip
    backend = StandaloneBackend(2, port=workers.port, secret_file=workers.secret_file, start_timeout_s=60)
    driver = make_driver(backend, store, space, epochs=3)
    result = driver.run()
    assert (tmp_path / "killed").exists()
    (loss,) = driver.worker_losses
    assert loss["worker_id"] == 1 and "connection closed" in loss["reason"]
    assert all(
        r.status == "completed" and [h.epoch for h in r.history] == [1, 2, 3] for r in result.models.values()
    )
    exited = [p for p in workers.processes if p.poll() is not None]
    assert len(exited) == 1, [p.stdout.read()[-3000:] for p in exited]  # the killed one; the others wait on


def test_a_worker_with_another_secret_is_refused_and_the_start_times_out_with_what_to_do(workers, tmp_path):
    other = tmp_path / "other"
    read_secret(other, create=True)
    (intruder,) = workers.start(1, "--once", secret_file=other)
    backend = StandaloneBackend(1, port=workers.port, secret_file=workers.secret_file, start_timeout_s=3)
    with pytest.raises(
        BackendError, match=r"Only 0 of 1 workers connected .*Start 1 workers with `cerebro-worker"
    ):
        backend.start()
    assert not backend.is_running
    assert intruder.wait(timeout=30) == 2 and "refused this worker's secret" in intruder.stdout.read()


def test_the_secret_file_is_created_private_and_checked(tmp_path):
    path = tmp_path / "dir" / "secret"
    secret = read_secret(path, create=True)
    assert len(secret) >= 16 and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert read_secret(path) == secret  # not replaced
    (tmp_path / "short").write_text("abcd\n")
    with pytest.raises(InvalidParamError, match=r"at least 16 bytes .* Received: 2 bytes"):
        read_secret(tmp_path / "short")
    with pytest.raises(InvalidParamError, match=r"secret_file must name a readable file"):
        read_secret(tmp_path / "missing")


def test_bad_arguments_are_named():
    with pytest.raises(InvalidParamError, match=r"num_workers must be an int >= 1. Received: num_workers=0"):
        StandaloneBackend(0)
    with pytest.raises(InvalidParamError, match=r"port must be an int in \[0, 65535\]. Received: port=70000"):
        StandaloneBackend(2, port=70000)
    with pytest.raises(SystemExit):
        worker_main(["--driver", "nohostport"])


def test_the_console_script_is_installed_beside_the_interpreter():
    script = Path(sys.executable).with_name("cerebro-worker")
    assert script.exists(), "pip install -e . declares cerebro-worker ([project.scripts])"
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--secret-file" in out.stdout
