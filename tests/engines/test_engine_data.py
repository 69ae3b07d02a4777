"""Data of the Dask and Ray engines prepared without Spark: a Dask DataFrame and a Ray Dataset give the same
prepared data as the pandas rows they hold (found again by content)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from synthetic import make_pandas  # noqa: E402

from cerebro_spark.data.prepare_local import prepare_local  # noqa: E402

KWARGS = {
    "feature_columns": ["features"],
    "label_columns": ["label"],
    "num_partitions": 2,
    "validation": 0.2,
    "seed": 3,
}


@pytest.mark.dask
def test_a_dask_dataframe_is_prepared_as_its_rows(store):
    import dask
    import dask.dataframe as dd

    rows = make_pandas(500, seed=2)
    with dask.config.set({"dataframe.convert-string": False}):  # keep the arrays (not their text)
        frame = dd.from_pandas(rows, npartitions=3)
    spec = prepare_local(frame, store, **KWARGS)
    assert spec.train_rows + spec.val_rows == 500
    assert prepare_local(rows, store, **KWARGS) == spec


@pytest.mark.ray
def test_a_ray_dataset_is_prepared_as_its_rows(store):
    import ray

    rows = make_pandas(500, seed=2)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        blocks = [rows.iloc[:200], rows.iloc[200:350], rows.iloc[350:]]
        spec = prepare_local(ray.data.from_pandas(blocks), store, **KWARGS)
    finally:
        ray.shutdown()
    assert spec.train_rows + spec.val_rows == 500
    assert prepare_local(rows, store, **KWARGS) == spec
