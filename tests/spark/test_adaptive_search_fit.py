"""ASHASearch end to end on real Spark data and real Keras models (LocalBackend workers)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.spark, pytest.mark.keras]

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from synthetic import make_dataframe  # noqa: E402


def tiny_gen_fn(params):
    import keras

    from cerebro_spark.keras import KerasEstimator

    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(4, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])  # fmt: skip
    return KerasEstimator(model=model, optimizer=keras.optimizers.Adam(params["lr"]), loss="binary_crossentropy",
                          metrics=["accuracy"], batch_size=16)  # fmt: skip


def test_asha_search_fits_end_to_end_with_statuses_and_reasons(spark, store):
    from cerebro_spark import LocalBackend
    from cerebro_spark.store import layout
    from cerebro_spark.tune import ASHASearch, hp_loguniform

    search = ASHASearch(
        backend=LocalBackend(2), store=store, estimator_gen_fn=tiny_gen_fn,
        search_space={"lr": hp_loguniform(1e-3, 1e-1)}, num_models=6, min_epochs=1, max_epochs=3,
        reduction_factor=3, max_concurrent=3, evaluation_metric="val_loss", validation=0.25,
        feature_columns=["features"], label_columns=["label"], seed=5, verbose=0,
    )  # fmt: skip
    result = search.fit(make_dataframe(spark, 100, seed=1, num_slices=2))

    record = store.read_json(layout.run_record_key(result.run_id))
    models = record["models"]
    assert record["status"] == "completed" and record["algorithm"]["name"] == "asha"
    assert len(models) == 6
    statuses = {m: info["status"] for m, info in models.items()}
    assert set(statuses.values()) <= {"completed", "stopped"}
    completed = [m for m, s in statuses.items() if s == "completed"]
    assert completed and all(models[m]["epochs"] == 3 for m in completed)
    assert all(models[m]["reason"] == "completed 3 epochs" for m in completed)
    stopped = [m for m, s in statuses.items() if s == "stopped"]
    assert stopped and all(
        models[m]["epochs"] < 3 and models[m]["reason"].startswith("stopped at") for m in stopped
    )
    assert result.best_model_id in models
    history = result.get_all_model_history()
    assert {m: len(series["val_loss"]) for m, series in history.items()} == {
        m: info["epochs"] for m, info in models.items()
    }


@pytest.mark.parametrize("name", ["SuccessiveHalvingSearch", "HyperbandSearch", "ASHASearch", "TPESearch"])
def test_constructor_defaults_equal_param_defaults_and_every_param_has_a_doc(name):
    import inspect

    import cerebro_spark.tune as tune

    cls = getattr(tune, name)
    instance = cls()
    for pname, parameter in inspect.signature(cls.__init__).parameters.items():
        if parameter.kind is parameter.KEYWORD_ONLY:
            param = instance.getParam(pname)
            assert param.doc, pname
            default = instance.getOrDefault(param) if instance.hasDefault(param) else None
            assert default == parameter.default, (name, pname)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_epochs": 0}, r"The 'min_epochs' param of ASHASearch must be an int >= 1. Received: 0."),
        (
            {"reduction_factor": 1},
            r"The 'reduction_factor' param of ASHASearch must be an int >= 2. Received: 1.",
        ),
        (
            {"max_concurrent": 0},
            r"The 'max_concurrent' param of ASHASearch must be an int >= 1 or None. Received: 0.",
        ),
        (
            {"min_epochs": 4, "max_epochs": 3},
            r"'min_epochs' param of ASHASearch must be <= max_epochs \(3\). Received: 4",
        ),
    ],
)
def test_adaptive_params_are_checked_with_clear_errors(kwargs, match):
    from cerebro_spark.errors import InvalidParamError
    from cerebro_spark.tune import ASHASearch, hp_choice

    search = ASHASearch(search_space={"lr": hp_choice([0.1])}, seed=1, **kwargs)
    with pytest.raises(InvalidParamError, match=match):
        search._algorithm()
