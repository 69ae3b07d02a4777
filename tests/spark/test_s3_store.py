"""A search whose Store is an S3 bucket: a real S3 endpoint (moto's server, on loopback) and s3fs.

The executors write the prepared data, the driver the journal, checkpoints and TensorBoard files, all
through ``s3://``; an interrupted run resumes from the bucket; ``continue_training`` reads it back; a
ModelSelectionModel saved on local disk reads the models it did not save from the bucket. The secret key
is given once (``storage_options``, or the environment when a saved model is loaded) and never lands in a
log record or a saved file.
"""

from __future__ import annotations

import json
import logging
import sys
from collections import Counter
from pathlib import Path

import pytest

pytestmark = [pytest.mark.spark, pytest.mark.keras]

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from synthetic import make_dataframe  # noqa: E402

BUCKET = "cerebro-test"
KEY_ID = "AKIACEREBROTEST"
SECRET = "s3cr3t-never-logged-9f2c"


@pytest.fixture(scope="module")
def endpoint():
    """moto's S3 server on a free loopback port, with one empty bucket."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    url = "http://{}:{}".format(*server.get_host_and_port())
    boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
    ).create_bucket(Bucket=BUCKET)
    yield url
    server.stop()


@pytest.fixture
def s3_store(endpoint, request):
    from cerebro_spark import Store

    return Store.create(
        f"s3://{BUCKET}/{request.node.name}", key=KEY_ID, secret=SECRET, endpoint_url=endpoint
    )


@pytest.fixture(scope="module")
def rows(spark):
    df = make_dataframe(spark, 200, seed=1, num_slices=2).cache()
    df.count()
    yield df
    df.unpersist()


def gen_fn(params):
    import keras

    from cerebro_spark.keras import KerasEstimator

    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(4, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])  # fmt: skip
    return KerasEstimator(model=model, optimizer=keras.optimizers.Adam(params["lr"]), loss="binary_crossentropy",
                          metrics=["accuracy"], batch_size=16)  # fmt: skip


def grid(store, backend, run_id, epochs=2, **kwargs):
    from cerebro_spark.tune import GridSearch, hp_choice

    return GridSearch(
        backend=backend, store=store, estimator_gen_fn=gen_fn, search_space={"lr": hp_choice([1e-2, 5e-2])},
        num_epochs=epochs, evaluation_metric="val_loss", validation=0.25, feature_columns=["features"],
        label_columns=["label"], seed=7, verbose=0, run_id=run_id, **kwargs,
    )  # fmt: skip


def bucket_files(store) -> dict[str, bytes]:
    """Every object under the Store's root, by key relative to it."""
    fs, root = store._fs, store._root  # the Store's own filesystem: the same credentials and endpoint
    return {path[len(root) + 1 :]: fs.cat_file(path) for path in fs.find(root)}


def journal(store, run_id):
    from cerebro_spark.store import layout

    return [json.loads(line) for line in store.read_text(layout.journal_key(run_id)).splitlines()]


def test_a_search_prepares_trains_and_records_everything_in_the_bucket(
    spark, rows, s3_store, monkeypatch, caplog, tmp_path
):
    from cerebro_spark import SparkBackend
    from cerebro_spark.tune import ModelSelectionModel

    monkeypatch.setenv("CEREBRO_COLLECT_MAX_BYTES", "0")  # the executors write the prepared data
    caplog.set_level(logging.DEBUG, logger="cerebro_spark")
    result = grid(s3_store, SparkBackend(spark, num_workers=2), "on-s3", tensorboard=True).fit(rows)
    assert set(result.get_all_model_history()) == {"m0000", "m0001"}

    files = bucket_files(s3_store)
    (data,) = {key.split("/")[1] for key in files if key.startswith("data/")}
    assert {f"data/{data}/train/part-0000{i}.parquet" for i in (0, 1)} <= set(files)
    assert f"data/{data}/_metadata.json" in files
    for name in ("search.json", "journal.jsonl", "models/m0000/model.keras", "models/m0001/model.keras"):
        assert f"runs/on-s3/{name}" in files, name
    assert any(k.startswith("runs/on-s3/models/m0000/ckpt-") for k in files)
    assert any("tfevents" in k for k in files), sorted(files)
    assert len(journal(s3_store, "on-s3")) == 2 * 2 * 4  # 2 models x 2 epochs x (2 train + 2 eval units)

    saved = tmp_path / "selection"
    result.save(str(saved))
    written = [p.read_bytes() for p in saved.rglob("*") if p.is_file()]
    for where, content in [*files.items(), *((f"saved {i}", b) for i, b in enumerate(written))]:
        assert SECRET.encode() not in content, where
    assert SECRET not in caplog.text and caplog.records  # logged plenty, never the secret

    # Loaded elsewhere, with the credentials from the environment: the models not saved with it come
    # from the bucket.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_store._storage_options["endpoint_url"])
    loaded = ModelSelectionModel.load(str(saved))
    other = next(m for m in ("m0000", "m0001") if m != result.best_model_id)
    predictions = loaded.get_model(other).transform(rows).select("prediction").collect()
    assert len(predictions) == 200
    assert loaded.get_model(other).keras().count_params() == result.get_model(other).keras().count_params()


def test_an_interrupted_run_resumes_from_the_bucket_and_continues(spark, rows, s3_store):
    from cerebro_spark import SparkBackend
    from cerebro_spark.driver import DriverCallback

    class CtrlCAfterFirstEpoch(DriverCallback):
        def on_epoch_end(self, record):
            raise KeyboardInterrupt

    reference = grid(s3_store, SparkBackend(spark, num_workers=2), "reference").fit(rows)
    with pytest.raises(KeyboardInterrupt):
        grid(s3_store, SparkBackend(spark, num_workers=2), "resumed")._run(
            rows, callbacks=[CtrlCAfterFirstEpoch()]
        )
    assert s3_store.read_json("runs/resumed/search.json")["status"] == "interrupted"
    resumed = grid(s3_store, SparkBackend(spark, num_workers=2), "resumed").fit(rows)
    assert resumed.get_all_model_history() == reference.get_all_model_history()  # exactly
    units = Counter(
        (u["model_id"], u["epoch"], u["partition"], u["kind"]) for u in journal(s3_store, "resumed")
    )
    assert set(units.values()) == {1} and len(units) == 2 * 2 * 4

    more = resumed.continue_training(models=["m0001"], epochs=1)
    history = more.get_all_model_history()
    assert len(history["m0001"]["val_loss"]) == 3 and len(history["m0000"]["val_loss"]) == 2
    assert history["m0001"]["val_loss"][:2] == reference.get_all_model_history()["m0001"]["val_loss"]
    assert len({k.split("/")[1] for k in bucket_files(s3_store) if k.startswith("data/")}) == 1  # reused
