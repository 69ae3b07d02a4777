"""One search, five engines: the quickstart's 8-model grid (real Keras, the same seed, the same rows)
gives identical histories on LocalBackend, SparkBackend, DaskBackend, RayBackend and StandaloneBackend.
(The Dask and Ray cases need their extras, which `make install` installs; `make test-spark35` deselects
their markers.)"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.keras

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from quickstart import estimator_gen_fn  # noqa: E402
from synthetic import make_pandas  # noqa: E402

ROWS = make_pandas(2_000, seed=5)


def search(backend: Any, store: Any, run_id: str) -> Any:
    from cerebro_spark.tune import GridSearch, hp_choice

    return GridSearch(
        backend=backend, store=store, estimator_gen_fn=estimator_gen_fn,
        search_space={"width": hp_choice([8, 64]), "lr": hp_choice([3e-2, 1e-2, 3e-3, 1e-3]), "batch_size": 64},
        num_epochs=2, evaluation_metric="val_accuracy", validation=0.2, feature_columns=["features"],
        label_columns=["label"], seed=11, verbose=0, run_id=run_id,
    )  # fmt: skip


@contextmanager
def local_backend(request: Any) -> Iterator[Any]:
    from cerebro_spark import LocalBackend

    yield LocalBackend(2)


@contextmanager
def spark_backend(request: Any) -> Iterator[Any]:
    from cerebro_spark import SparkBackend

    yield SparkBackend(request.getfixturevalue("spark"), num_workers=2)


@contextmanager
def dask_backend(request: Any) -> Iterator[Any]:
    import distributed

    from cerebro_spark import DaskBackend

    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        with distributed.Client(cluster, set_as_default=False) as client:
            yield DaskBackend(client)


@contextmanager
def ray_backend(request: Any) -> Iterator[Any]:
    import ray

    from cerebro_spark import RayBackend

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield RayBackend(2)
    finally:
        ray.shutdown()


@contextmanager
def standalone_backend(request: Any) -> Iterator[Any]:
    from cerebro_spark import StandaloneBackend
    from cerebro_spark.backend.standalone import read_secret

    tmp = request.getfixturevalue("tmp_path")
    secret = tmp / "secret"
    read_secret(secret, create=True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "cerebro_spark.backend.standalone", "--driver", f"127.0.0.1:{port}",
               "--secret-file", str(secret), "--cores", "1"]  # fmt: skip
    workers = [subprocess.Popen(command) for _ in range(2)]
    try:
        yield StandaloneBackend(2, port=port, secret_file=secret, start_timeout_s=120)
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)


ENGINES = {
    "spark": (spark_backend, [pytest.mark.spark]),
    "dask": (dask_backend, [pytest.mark.dask]),
    "ray": (ray_backend, [pytest.mark.ray]),
    "standalone": (standalone_backend, []),
}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, list[float]]]:
    from cerebro_spark import LocalBackend, Store

    store = Store.create(str(tmp_path_factory.mktemp("reference")))
    return search(LocalBackend(2), store, "reference").fit(ROWS).get_all_model_history()  # type: ignore[no-any-return]


@pytest.mark.parametrize("engine", [pytest.param(name, marks=marks) for name, (_, marks) in ENGINES.items()])
def test_the_same_grid_gives_identical_histories_on_every_engine(engine, reference, store, request):
    make_backend, _ = ENGINES[engine]
    with make_backend(request) as backend:
        result = search(backend, store, f"on-{engine}").fit(ROWS)
    history = result.get_all_model_history()
    assert len(history) == 8 and all(len(h["val_accuracy"]) == 2 for h in history.values())
    assert history == reference
