"""examples/deep_postures on a real local Spark: the loader's DataFrame, and the tiny selection learning."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.spark, pytest.mark.keras]

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from deep_postures.generate import generate  # noqa: E402
from deep_postures.loader import day_sequences, list_day_files, load_sequences  # noqa: E402
from deep_postures.model import estimator_gen_fn  # noqa: E402


def test_the_loader_reads_on_executors_what_it_reads_on_the_driver_and_the_model_fits_it(spark, tmp_path):
    generate(tmp_path, subjects=3, days=1, hours=0.5, seed=5)
    on_executors = load_sequences(spark, str(tmp_path), 6)
    on_driver = load_sequences(spark, str(tmp_path), 6, local=True)
    assert on_executors.rdd.getNumPartitions() == 3  # one task per file
    assert on_executors.schema == on_driver.schema
    assert on_executors.schema.simpleString() == (
        "struct<subject:string,day:string,start_time:double,features:array<array<float>>,labels:array<bigint>>"
    )
    rows = sorted(on_executors.collect(), key=lambda r: (r.subject, r.start_time))
    assert rows == sorted(on_driver.collect(), key=lambda r: (r.subject, r.start_time))
    assert len(rows) == sum(day_sequences(url, 6).num_rows for url in list_day_files(str(tmp_path))) > 10
    assert {r.subject for r in rows} == {"S001", "S002", "S003"}

    features = np.array([r.features for r in rows[:4]], dtype=np.float32)
    labels = np.array([r.labels for r in rows[:4]])
    assert features.shape == (4, 6, 300) and labels.shape == (4, 6)
    assert set(np.unique(labels)) <= {0, 1}
    model = estimator_gen_fn({"seq_len": 6, "amp": 0.125, "l2": 1e-4, "lr": 1e-3}).getModel()
    assert model.predict(features, verbose=0).shape == (4, 6, 2)


@pytest.mark.slow
def test_the_tiny_selection_learns_well_above_the_majority_class(spark, tmp_path):
    """The tiny setting (learning rate 1e-3, 7-minute sequences: 4 of its 16 configurations)."""
    from deep_postures.run import parse_args, run_selection

    args = parse_args(["--tiny", "--store", str(tmp_path / "store"), "--minutes", "7", "--lrs", "1e-3"])
    board, runs = run_selection(spark, args)
    assert len(board) == 4 and set(board["status"]) == {"completed"}

    # the majority rate of the validation windows, from the files themselves
    val = [u for u in list_day_files(runs[0]["root"]) if u.split("/")[-2] in runs[0]["val_subjects"]]
    labels = np.concatenate([np.concatenate(day_sequences(u, 42).column("labels").to_pylist()) for u in val])
    majority = max(labels.mean(), 1 - labels.mean())
    assert runs[0]["val_majority"] == pytest.approx(majority)
    assert 0.5 <= majority < 0.8
    assert board["val_accuracy"].iloc[0] > majority + 0.1
