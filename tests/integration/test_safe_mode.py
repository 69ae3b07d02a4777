"""Keras files are loaded in safe mode: a model file carrying Python code (a Lambda layer) is refused."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.keras


@pytest.fixture(scope="module")
def lambda_model_bytes(tmp_path_factory):
    import keras

    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Lambda(lambda x: x * 2.0), keras.layers.Dense(1)]
    )
    path = tmp_path_factory.mktemp("model") / "lambda.keras"
    model.save(path)
    return path.read_bytes()


def test_the_driver_side_loader_refuses_code_in_model_files(lambda_model_bytes):
    from cerebro_spark.training.keras_io import model_from_bytes

    with pytest.raises(ValueError, match=r"(?i)lambda.*safe_mode"):
        model_from_bytes(lambda_model_bytes)


def test_the_worker_side_loader_refuses_code_in_model_files(lambda_model_bytes, store):
    from cerebro_spark.training import trainer
    from cerebro_spark.training.model_spec import ModelSpec

    spec = ModelSpec(run_id="r1", model_id="m0000", batch_size=8, params={})
    store.write_bytes(spec.initial_key, lambda_model_bytes)
    with pytest.raises(ValueError, match=r"(?i)lambda.*safe_mode"):
        trainer._build(store, spec)
