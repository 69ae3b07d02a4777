"""Keras on JAX: KERAS_BACKEND=jax on the driver runs the workers on JAX too; one seed gives identical
histories run twice and on hand-started worker processes; what a JAX search saves loads and predicts
the same under TensorFlow; a worker process already on another backend is refused with what to do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.jax, pytest.mark.keras]

ROOT = Path(__file__).resolve().parents[2]

SEARCH = """
import json, os, socket, subprocess, sys
sys.path.insert(0, {examples!r})
import numpy as np
from quickstart import estimator_gen_fn
from synthetic import make_pandas
from cerebro_spark import LocalBackend, StandaloneBackend, Store
from cerebro_spark.backend.standalone import read_secret
from cerebro_spark.tune import GridSearch, hp_choice

out = {out!r}
store = Store.create(os.path.join(out, "store"))
rows = make_pandas(2_000, seed=5)

def search(backend, run_id):
    return GridSearch(
        backend=backend, store=store, estimator_gen_fn=estimator_gen_fn,
        search_space={{"width": hp_choice([8, 64]), "lr": hp_choice([3e-2, 1e-3]), "batch_size": 64}},
        num_epochs=2, evaluation_metric="val_accuracy", validation=0.2, feature_columns=["features"],
        label_columns=["label"], seed=11, verbose=0, run_id=run_id,
    ).fit(rows)

first = search(LocalBackend(2), "first")
second = search(LocalBackend(2), "second")
secret = os.path.join(out, "secret"); read_secret(secret, create=True)
with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0)); port = probe.getsockname()[1]
workers = [subprocess.Popen([sys.executable, "-m", "cerebro_spark.backend.standalone", "--driver",
                             f"127.0.0.1:{{port}}", "--secret-file", secret, "--cores", "1", "--once"])
           for _ in range(2)]
remote = search(StandaloneBackend(2, port=port, secret_file=secret, start_timeout_s=120), "remote")
assert all(w.wait(timeout=60) == 0 for w in workers)
first.write().save(os.path.join(out, "saved"))
scored = first.transform(rows.head(200))
np.save(os.path.join(out, "probability.npy"), np.stack(scored["probability"].to_numpy()))
other = sorted(m for m in first.get_all_model_params() if m != first.best_model_id)[0]
from_checkpoint = first.get_model(other).transform(rows.head(200))  # its state blob, from the run's Store
np.save(os.path.join(out, "other.npy"), np.stack(from_checkpoint["probability"].to_numpy()))
open(os.path.join(out, "other.txt"), "w").write(other)
import keras
json.dump({{
    "backend": keras.backend.backend(),
    "histories": [r.get_all_model_history() for r in (first, second, remote)],
    "workers": store.read_json("runs/remote/search.json")["workers"],
}}, open(os.path.join(out, "result.json"), "w"))
"""

LOAD = """
import os, sys
sys.path.insert(0, {examples!r})
import numpy as np
from synthetic import make_pandas
from cerebro_spark.tune import ModelSelectionModel
import keras
assert keras.backend.backend() == "tensorflow"
loaded = ModelSelectionModel.load(os.path.join({out!r}, "saved"))
scored = loaded.transform(make_pandas(2_000, seed=5).head(200))
np.save(os.path.join({out!r}, "probability_tf.npy"), np.stack(scored["probability"].to_numpy()))
other = open(os.path.join({out!r}, "other.txt")).read()  # not saved with the selection: read from the run's Store
from_checkpoint = loaded.get_model(other).transform(make_pandas(2_000, seed=5).head(200))
np.save(os.path.join({out!r}, "other_tf.npy"), np.stack(from_checkpoint["probability"].to_numpy()))
"""


def run(code: str, backend: str) -> None:
    env = {**os.environ, "KERAS_BACKEND": backend}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-4000:]


@pytest.fixture(scope="module")
def jax_search(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("jax")
    run(SEARCH.format(examples=str(ROOT / "examples"), out=str(out)), "jax")
    return out


def test_a_seeded_search_on_jax_is_identical_run_twice_and_on_worker_processes(jax_search):
    result = json.loads((jax_search / "result.json").read_text())
    assert result["backend"] == "jax"
    first, second, remote = result["histories"]
    assert len(first) == 4 and all(len(h["val_accuracy"]) == 2 for h in first.values())
    assert first == second == remote
    assert max(max(h["val_accuracy"]) for h in first.values()) > 0.8
    assert [w["keras_backend"] for w in result["workers"]] == ["jax", "jax"]


def test_what_a_jax_search_saves_predicts_the_same_under_tensorflow(jax_search):
    run(LOAD.format(examples=str(ROOT / "examples"), out=str(jax_search)), "tensorflow")
    np.testing.assert_allclose(
        np.load(jax_search / "probability_tf.npy"),
        np.load(jax_search / "probability.npy"),
        rtol=1e-5,
        atol=1e-6,
    )


def test_a_worker_already_on_another_backend_is_refused_with_what_to_do():
    code = """
    import keras
    from cerebro_spark.errors import TrainingError
    from cerebro_spark.training import keras_backend
    keras_backend.use("tensorflow")  # the backend it runs: fine
    try:
        keras_backend.use("jax")
    except TrainingError as e:
        print(e)
    """
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300,
        env={**os.environ, "KERAS_BACKEND": "tensorflow"},
    )  # fmt: skip
    assert "already runs Keras on 'tensorflow', and the search runs it on 'jax'" in proc.stdout, proc.stderr
    assert "Start new workers" in proc.stdout


def test_a_backend_searches_do_not_run_on_is_refused_before_any_work(tmp_path):
    code = f"""
    import sys
    sys.path.insert(0, {str(ROOT / "examples")!r})
    from quickstart import estimator_gen_fn
    from synthetic import make_pandas
    from cerebro_spark import LocalBackend, Store
    from cerebro_spark.errors import InvalidParamError
    from cerebro_spark.tune import GridSearch, hp_choice
    search = GridSearch(backend=LocalBackend(2), store=Store.create({str(tmp_path)!r}),
                        estimator_gen_fn=estimator_gen_fn, search_space={{"lr": hp_choice([1e-2])}},
                        feature_columns=["features"], label_columns=["label"], validation=0.2, verbose=0)
    try:
        search.fit(make_pandas(100))
    except InvalidParamError as e:
        print(e)
    print("keras imported:", "keras" in sys.modules)
    """
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300,
        env={**os.environ, "KERAS_BACKEND": "torch"},
    )  # fmt: skip
    assert (
        "runs Keras on tensorflow or jax (KERAS_BACKEND" in proc.stdout and "Received: 'torch'" in proc.stdout
    )
    assert "keras imported: False" in proc.stdout, proc.stderr
