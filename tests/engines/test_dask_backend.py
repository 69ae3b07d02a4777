"""DaskBackend on a LocalCluster of two worker processes: one pinned task per Dask worker serves a search
(fake tasks, no Spark, no TensorFlow) exactly as in-process workers do, survives a killed Dask worker
(its nanny starts a new process; the backend relaunches), and names bad arguments."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import distributed
import pytest

from cerebro_spark import LocalBackend
from cerebro_spark.backend.base import TaskRequest
from cerebro_spark.backend.dask import DaskBackend, _DaskWorker, _is_this_machine
from cerebro_spark.errors import BackendError, InvalidParamError
from cerebro_spark.search import hp_choice
from cerebro_spark.testing.fakes import fake_driver

pytestmark = pytest.mark.dask

GRID = {"rate": hp_choice([1.0, 2.0, 3.0, 4.0]), "b": hp_choice([0, 1])}


@pytest.fixture(scope="module")
def client() -> Iterator[distributed.Client]:
    """Two Dask worker processes (one thread each, each under a nanny that restarts it if it dies).

    Not the default client: the test of a missing client needs there to be none."""
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    dask_client = distributed.Client(cluster, set_as_default=False)
    try:
        yield dask_client
    finally:
        dask_client.close()
        cluster.close()


def make_driver(backend, store, space, epochs=2):
    return fake_driver(backend, store, space, epochs=epochs)


def cerebro_keys(client) -> list[str]:
    """The backend's task keys this client still holds. The client releases a dropped future in its
    event loop; a call through that loop (scheduler_info) comes after the releases queued before it."""
    client.scheduler_info()
    return [str(key) for key in client.refcount if str(key).startswith("cerebro-worker")]


def test_bad_arguments_are_named(client):
    with pytest.raises(
        InvalidParamError, match=r"num_workers must be an int >= 1 .* Received: num_workers=0"
    ):
        DaskBackend(client, 0)
    with pytest.raises(
        InvalidParamError, match=r"client must be a distributed.Client .* Received: client=str"
    ):
        DaskBackend("tcp://127.0.0.1:8786")  # type: ignore[arg-type]
    too_many = DaskBackend(client, 3, start_timeout_s=5)
    message = r"needs num_workers=3 Dask workers .* has 2 running\. Pass num_workers <= 2"
    with pytest.raises(BackendError, match=message):
        too_many.num_workers  # noqa: B018
    with pytest.raises(BackendError, match=message):
        too_many.start()
    assert not too_many.is_running
    assert distributed.client._get_global_client() is None  # the fixture's client is not the default
    with pytest.raises(
        InvalidParamError, match=r"client must be a distributed.Client, or None .* there is none"
    ):
        DaskBackend().num_workers  # noqa: B018


def test_one_pinned_task_per_dask_worker_serves_the_requests(client):
    pids = client.run(os.getpid)  # {Dask worker address: its process id}
    backend = DaskBackend(client, start_timeout_s=60)
    assert backend.num_workers == 2
    assert client.scheduler.address in backend.describe()
    with backend:
        assert backend.is_running
        for worker in range(2):
            backend.submit(worker, TaskRequest(worker, "cerebro_spark.testing.tasks:whoami"))
        answers = [backend.next_result(timeout=60) for _ in range(2)]
        processing = {a: list(keys) for a, keys in client.processing().items()}
    assert not backend.is_running
    who = {r.worker_id: r.value for r in answers if r is not None and r.ok}
    assert sorted(who) == [0, 1] and all(w["num_workers"] == 2 and w["cores"] == 1 for w in who.values())
    assert {w["pid"] for w in who.values()} == set(pids.values())  # one worker in each Dask worker
    assert all(len(keys) == 1 for keys in processing.values()), processing  # pinned: one each
    assert cerebro_keys(client) == []


class _WrongSecret(DaskBackend):
    """Its Dask tasks hold another secret than its control server: each fails its handshake at once."""

    def _launch(self, n, address, secret, events):
        return super()._launch(n, address, bytes(len(secret)), events)


def test_failing_dask_tasks_end_the_start_with_their_error(client):
    backend = _WrongSecret(client, start_timeout_s=60)
    with pytest.raises(
        BackendError,
        match=r"(?s)could not start: 0 of 2 workers connected, then the Dask tasks running the workers ended "
        r"unexpectedly: Worker \d's Dask task on tcp://\S+ failed: AuthenticationError",
    ):
        backend.start()
    assert not backend.is_running and cerebro_keys(client) == []


def test_a_search_on_dask_gives_what_it_gives_on_local_workers(client, store, tmp_path):
    backend = DaskBackend(client, start_timeout_s=60)
    result = make_driver(backend, store, GRID).run()
    assert not backend.is_running

    from cerebro_spark.store.base import Store

    expected = make_driver(LocalBackend(2), Store.create(str(tmp_path / "local")), GRID).run()
    assert len(result.models) == 8
    assert result.best_model_id == expected.best_model_id
    assert {m: [h.metrics for h in r.history] for m, r in result.models.items()} == {
        m: [h.metrics for h in r.history] for m, r in expected.models.items()
    }


def test_a_killed_dask_worker_is_restarted_by_its_nanny_and_the_search_relaunched(client, store, tmp_path):
    """The unit of epoch 2 on partition 1 SIGKILLs its Dask worker's process once (the marker file): one
    loss, the workers relaunched on the Dask workers then running, every model trains every epoch."""
    before = set(client.scheduler_info()["workers"])
    space = {"rate": hp_choice([1.0, 2.0]), "fault": hp_choice(["kill_python", None]),
             "fault_marker": str(tmp_path / "killed"), "fault_epoch": 2, "fault_partition": 1}  # fmt: skip
    backend = DaskBackend(client, start_timeout_s=120)
    driver = make_driver(backend, store, space, epochs=3)
    result = driver.run()
    assert (tmp_path / "killed").exists()
    (loss,) = driver.worker_losses
    # its connection closes and the scheduler says its Dask worker left: whichever the driver hears first
    reasons = ("connection closed", "its Dask worker left the cluster")
    assert loss["worker_id"] == 1 and any(r in loss["reason"] for r in reasons), loss
    assert all(
        r.status == "completed" and [h.epoch for h in r.history] == [1, 2, 3] for r in result.models.values()
    )
    after = set(client.scheduler_info()["workers"])
    assert len(after) == 2 and len(after & before) == 1  # the nanny started a new process (a new address)
    assert not backend.is_running
    assert cerebro_keys(client) == []  # the task left pinned to the dead worker was cancelled too


def test_the_loss_names_the_dask_worker_that_left(client, store, tmp_path):
    space = {"rate": hp_choice([1.0]), "fault": "kill_python", "fault_marker": str(tmp_path / "killed")}
    backend = DaskBackend(client, start_timeout_s=120, max_restarts=0)
    left = r"(?s)max_restarts=0.*Dask worker tcp://\S+ \(name \d\), which ran worker \d, left the cluster"
    with pytest.raises(BackendError, match=left):
        make_driver(backend, store, space, epochs=1).run()
    assert not backend.is_running
    assert cerebro_keys(client) == []
    client.wait_for_workers(2, timeout=120)  # the nanny's new process, for the tests that follow


def test_the_driver_listens_on_loopback_unless_a_dask_worker_runs_elsewhere(client, monkeypatch):
    backend = DaskBackend(client)
    assert backend._bind_host() == "127.0.0.1"  # the LocalCluster's workers: on this machine
    assert DaskBackend(client, bind_address="0.0.0.0")._bind_host() == "0.0.0.0"  # only when asked for
    assert backend._worker_address(("0.0.0.0", 4242)) == ("127.0.0.1", 4242)
    assert _is_this_machine("localhost") and not _is_this_machine("203.0.113.7")  # TEST-NET-3
    far = _DaskWorker("tcp://203.0.113.7:4000", "far", "203.0.113.7", 1)
    monkeypatch.setattr(DaskBackend, "_dask_workers", lambda self, client: [far])
    host = backend._bind_host()  # this machine's address on the route to that worker
    assert host != "127.0.0.1" and _is_this_machine(host)


def test_importing_the_module_does_not_import_pyspark():
    code = "import sys, cerebro_spark.backend.dask; assert 'pyspark' not in sys.modules, 'pyspark imported'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
