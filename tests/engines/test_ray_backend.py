"""RayBackend on a local Ray (2 CPUs): actors serve a search as in-process workers do (fake tasks, no
Spark, no TensorFlow), a killed actor is a lost worker that the search relaunches, shutdown kills every
actor, bad arguments are named, and the module imports no pyspark."""

from __future__ import annotations

import queue
import socket
import subprocess
import sys
import time

import pytest
import ray

from cerebro_spark import LocalBackend
from cerebro_spark.backend._control_server import WorkerLost
from cerebro_spark.backend.ray import RayBackend, _CerebroWorker, _RayActors
from cerebro_spark.backend.remote import JobEnded
from cerebro_spark.errors import BackendError, InvalidParamError
from cerebro_spark.search import hp_choice
from cerebro_spark.store.base import Store
from cerebro_spark.testing.fakes import fake_driver

pytestmark = pytest.mark.ray

GRID = {"rate": hp_choice([1.0, 2.0, 3.0, 4.0]), "b": hp_choice([0, 1])}


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One local Ray of 2 CPUs for the module (its start takes seconds)."""
    started = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    print(f"ray.init took {time.perf_counter() - started:.1f} s")
    yield
    ray.shutdown()


def make_driver(backend, store, space, epochs=2):
    return fake_driver(backend, store, space, epochs=epochs)


def test_ray_actors_run_the_search_as_in_process_workers_do(store, tmp_path):
    backend = RayBackend(2, start_timeout_s=60)
    result = make_driver(backend, store, GRID).run()
    assert not backend.is_running

    expected = make_driver(LocalBackend(2), Store.create(str(tmp_path / "local")), GRID).run()
    assert len(result.models) == 8
    assert result.best_model_id == expected.best_model_id
    assert {m: [h.metrics for h in r.history] for m, r in result.models.items()} == {
        m: [h.metrics for h in r.history] for m, r in expected.models.items()
    }
    assert all(
        r.status == "completed" and [h.epoch for h in r.history] == [1, 2] for r in result.models.values()
    )


def test_a_killed_actor_is_a_lost_worker_and_the_search_relaunches_the_actors(store, tmp_path):
    space = {"rate": hp_choice([1.0, 2.0]), "fault": hp_choice(["kill_python", None]),
             "fault_marker": str(tmp_path / "killed"), "fault_epoch": 2, "fault_partition": 1}  # fmt: skip
    backend = RayBackend(2, start_timeout_s=60)
    driver = make_driver(backend, store, space, epochs=3)
    result = driver.run()
    assert (tmp_path / "killed").exists()
    (loss,) = driver.worker_losses
    # the actor's control connection closes as Ray reports it dead: either tells first, naming worker 1
    assert loss["worker_id"] == 1
    assert "connection closed" in loss["reason"] or "its Ray actor died: ActorDiedError" in loss["reason"]
    assert all(
        r.status == "completed" and [h.epoch for h in r.history] == [1, 2, 3] for r in result.models.values()
    )
    assert not backend.is_running


def test_an_actor_ray_reports_dead_is_a_lost_worker_before_anything_else():
    """Ray may report the killed actor before its control connection closes: the launch then posts the
    loss of that worker first, then the end of the actors with Ray's error."""
    with socket.socket() as probe:  # a port nobody listens on: the worker keeps dialing until killed
        probe.bind(("127.0.0.1", 0))
        nowhere = probe.getsockname()
    events: queue.Queue[object] = queue.Queue()
    actor = ray.remote(num_cpus=1, max_restarts=0)(_CerebroWorker).remote()
    launch = _RayActors([actor], [actor.serve.remote(nowhere, b"s" * 32, 0, 1, 1, 1.0, None)], events)
    ray.kill(actor)
    lost, ended = events.get(timeout=60), events.get(timeout=60)
    assert lost == WorkerLost(0, "its Ray actor died: ActorDiedError")
    assert isinstance(ended, JobEnded) and ended.error.startswith(
        "the actor of worker 0 failed: ActorDiedError"
    )
    assert launch.error == ended.error
    launch.stop(grace_s=0.0, cancel_wait_s=30.0)


def test_shutdown_kills_every_actor_and_a_second_start_gets_the_cpus_back():
    backend = RayBackend(2, start_timeout_s=60)
    backend.start()
    actors = list(backend._job._actors)
    backend.shutdown()  # the workers return on Shutdown; their idle actors are killed all the same
    for actor in actors:
        with pytest.raises(ray.exceptions.RayActorError):
            ray.get(actor.serve.remote(("127.0.0.1", 9), b"x", 0, 1, 1, 1.0, None), timeout=60)
    backend.start()  # both CPUs again: it would wait for them until start_timeout_s otherwise
    assert backend.is_running and backend.num_workers == 2
    assert "RayBackend(ray=" in backend.describe() and "address=127.0.0.1:" in backend.describe()
    backend.shutdown()
    backend.shutdown()  # idempotent
    assert not backend.is_running


def test_actors_waiting_for_cpus_time_out_the_start_with_what_to_check_and_are_killed():
    holder = RayBackend(2, start_timeout_s=60)
    holder.start()  # holds both CPUs
    try:
        late = RayBackend(1, start_timeout_s=2)
        with pytest.raises(BackendError, match=r"Only 0 of 1 workers connected .*1 x 1 CPUs free at once"):
            late.start()
        assert not late.is_running
    finally:
        holder.shutdown()
    late.start()  # its pending actor was killed: it holds no CPU that this start waits for
    late.shutdown()


def test_bad_arguments_are_named():
    with pytest.raises(InvalidParamError, match=r"num_workers must be an int >= 1\. Received: num_workers=0"):
        RayBackend(0)
    with pytest.raises(
        InvalidParamError, match=r"num_cpus_per_worker must be a number > 0.*Received: num_cpus_per_worker=0"
    ):
        RayBackend(1, num_cpus_per_worker=0)
    with pytest.raises(
        InvalidParamError,
        match=r"num_gpus_per_worker must be a number >= 0.*Received: num_gpus_per_worker=-1",
    ):
        RayBackend(1, num_gpus_per_worker=-1)
    with pytest.raises(
        BackendError, match=r"num_workers=3 actors of num_cpus_per_worker=1 CPUs each, 3 CPUs at once, but the "
        r"Ray cluster has 2 CPUs .*num_workers <= 2"
    ):  # fmt: skip
        RayBackend(3).start()
    with pytest.raises(
        BackendError, match=r"num_cpus_per_worker=1\.5 CPUs each, 3 CPUs .* has 2 CPUs .*num_workers <= 1"
    ):
        _ = RayBackend(2, num_cpus_per_worker=1.5).num_workers
    with pytest.raises(BackendError, match=r"num_gpus_per_worker=1 GPUs each, 1 GPUs at once, .* has 0 GPUs"):
        RayBackend(1, num_gpus_per_worker=1).start()


def test_importing_the_ray_backend_does_not_import_pyspark():
    code = "import cerebro_spark.backend.ray, sys; assert 'pyspark' not in sys.modules"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
