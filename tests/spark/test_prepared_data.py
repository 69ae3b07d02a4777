"""fit_on_prepared_data: train on data prepared earlier (by fingerprint, key or spec) or on a Parquet directory."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.spark, pytest.mark.keras, pytest.mark.petastorm]

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

from quickstart import estimator_gen_fn  # noqa: E402
from synthetic import make_dataframe  # noqa: E402

COLUMNS = {"feature_columns": ["features"], "label_columns": ["label"]}


def grid_search(store, workers=2, **overrides):
    from cerebro_spark import LocalBackend
    from cerebro_spark.tune import GridSearch, hp_choice

    params = dict(
        backend=LocalBackend(workers), store=store, estimator_gen_fn=estimator_gen_fn,
        search_space={"width": hp_choice([4, 8]), "lr": 1e-2, "batch_size": 32}, num_epochs=1,
        validation=0.25, seed=3, verbose=0, tensorboard=False, **COLUMNS,
    )  # fmt: skip
    params.update(overrides)
    return GridSearch(**params)


@pytest.fixture(scope="module")
def frame(spark):
    df = make_dataframe(spark, 400, seed=1).cache()
    df.count()
    yield df
    df.unpersist()


def test_prepared_data_trains_without_any_spark_job(spark, frame, store, count_jobs):
    from cerebro_spark.data.prepare import prepare_data

    spec = prepare_data(frame, store, num_partitions=2, validation=0.25, seed=3, **COLUMNS)
    from_df = grid_search(store, run_id="from-df").fit(frame).get_all_model_history()  # reuses spec

    results = []
    for i, source in enumerate([spec.fingerprint, spec]):  # or spec.root: load_prepared's tests
        search = grid_search(store, run_id=f"prepared-{i}")
        assert count_jobs(lambda s=search, src=source: results.append(s.fit_on_prepared_data(src))) == 0
    histories = [r.get_all_model_history() for r in results]
    assert len(from_df) == 2 and all(len(h["val_loss"]) == 1 for h in from_df.values())
    assert histories == [from_df] * 2  # the same rows, the same seed: the same training


def test_a_parquet_directory_is_prepared_once_and_reused(spark, frame, store):
    directory = store.local_path("external/rows")
    frame.write.parquet(directory)
    first = grid_search(store, run_id="dir-1").fit_on_prepared_data("external/rows")
    prepared = sorted(store.listdir("data"))
    second = grid_search(store, run_id="dir-2").fit_on_prepared_data(directory)  # its path works too
    assert sorted(store.listdir("data")) == prepared and len(prepared) == 1
    assert first.get_all_model_history() == second.get_all_model_history()
    assert all(len(h["loss"]) == 1 for h in first.get_all_model_history().values())


def test_prepared_data_must_match_the_params(spark, frame, store):
    from cerebro_spark.data.prepare import prepare_data
    from cerebro_spark.errors import DataError, InvalidParamError

    spec = prepare_data(frame, store, num_partitions=2, seed=3, **COLUMNS)
    with pytest.raises(DataError, match=r"2 training partitions, one per worker, but the backend has 3"):
        grid_search(store, workers=3, validation=None, evaluation_metric="loss").fit_on_prepared_data(spec)
    with pytest.raises(DataError, match=r"feature columns \['features'\].*feature_columns=\['other'\]"):
        grid_search(store, feature_columns=["other"], evaluation_metric="loss").fit_on_prepared_data(spec)
    with pytest.raises(InvalidParamError, match=r"'val_loss' needs validation data, but the prepared data"):
        grid_search(store).fit_on_prepared_data(spec)
    with pytest.raises(DataError, match=r"neither prepared data in Store .* nor a Parquet directory"):
        grid_search(store).fit_on_prepared_data("no/such/folder")


def test_a_petastorm_codec_field_needs_petastorm(spark, store, monkeypatch):
    """A Parquet directory whose _common_metadata holds a Unischema (as Petastorm's materialize_dataset
    writes it) and whose feature is binary (NdarrayCodec's .npy bytes): without Petastorm, a clear error."""
    import io

    import numpy as np
    import pyarrow.parquet as pq

    from cerebro_spark.data.petastorm_dataset import UNISCHEMA_KEY
    from cerebro_spark.errors import DataError

    def npy(values):
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(values, dtype=np.float32))
        return bytearray(buffer.getvalue())

    rows = [(npy([i, -i, 0.5]), i % 2) for i in range(8)]
    directory = store.local_path("external/sensors")
    spark.createDataFrame(rows, "features binary, label int").coalesce(1).write.parquet(directory)
    plain = grid_search(store, validation=None, evaluation_metric="loss")
    with pytest.raises(DataError, match=r"Feature column 'features' must be numeric.*Received: binary"):
        plain.fit_on_prepared_data("external/sensors")  # binary, but no Unischema: not Petastorm's

    schema = pq.read_schema(next(Path(directory).glob("*.parquet")))
    pq.write_metadata(
        schema.with_metadata({UNISCHEMA_KEY: b"a pickled Unischema"}), f"{directory}/_common_metadata"
    )
    for name in ("petastorm", "petastorm.etl", "petastorm.etl.dataset_metadata"):
        monkeypatch.setitem(sys.modules, name, None)  # not installed (as in the main environment)
    with pytest.raises(
        DataError, match=r"'features' of the Petastorm dataset .* needs Petastorm, .* not installed"
    ):
        plain.fit_on_prepared_data("external/sensors")
    assert store.listdir("data") == []  # nothing prepared
