"""The prediction-output params on every estimator and search: accepted, defaulted, checked before training."""

from __future__ import annotations

import inspect

import pytest

from cerebro_spark.errors import InvalidParamError
from cerebro_spark.ml import (
    ASHASearch,
    GridSearch,
    HyperbandSearch,
    KerasEstimator,
    RandomSearch,
    SuccessiveHalvingSearch,
    TPESearch,
)
from cerebro_spark.ml._params import PREDICTION_DEFAULTS, validate_params
from cerebro_spark.store.base import Store

CLASSES = [
    KerasEstimator,
    GridSearch,
    RandomSearch,
    SuccessiveHalvingSearch,
    HyperbandSearch,
    ASHASearch,
    TPESearch,
]
SETTINGS = {
    "prediction_col": "cls",
    "probability_col": "p",
    "raw_prediction_col": "",
    "output_type": "vector",
    "task": "classification",
    "inference_batch_size": 7,
}


def make(cls, tmp_path, **params):
    """An instance whose other params pass validation, so that only the param under test can fail."""
    data = {"store": Store.create(str(tmp_path / "store")), "feature_columns": ["x"], "label_columns": ["y"]}
    if cls is not KerasEstimator:
        data.update(estimator_gen_fn=lambda config: None, search_space={})
    return cls(**data, **params)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_class_takes_the_prediction_params_with_their_defaults(cls, tmp_path):
    signature = inspect.signature(cls.__init__).parameters
    default = cls()
    for name, value in PREDICTION_DEFAULTS.items():
        assert signature[name].default == value and signature[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert default.getOrDefault(name) == value
    instance = make(cls, tmp_path, **SETTINGS)
    assert {name: instance.getOrDefault(name) for name in SETTINGS} == SETTINGS


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_an_unknown_keyword_is_refused(cls):
    with pytest.raises(InvalidParamError, match=r"unexpected keyword argument\(s\) \['probabilityCol'\]"):
        cls(probabilityCol="p")


BAD = [
    ("output_type", "list", r"must be one of 'array', 'vector'. Received: 'list'"),
    ("task", "classify", r"must be one of 'auto', 'classification', 'regression'. Received: 'classify'"),
    ("probability_col", None, r"must be a column name, or '' for no such column \(it is required\)"),
    ("inference_batch_size", 0, r"must be an int >= 1. Received: 0"),
]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize(("name", "value", "message"), BAD, ids=[b[0] for b in BAD])
def test_a_wrong_value_fails_fit_before_any_work(cls, tmp_path, name, value, message):
    instance = make(cls, tmp_path)
    instance._set(**{name: value})  # the constructor's type converters would refuse some of these first
    with pytest.raises(InvalidParamError, match=rf"The '{name}' param of {cls.__name__} {message}"):
        instance.fit(None)  # validated before the DataFrame is touched
    assert not (tmp_path / "store").exists() or not list((tmp_path / "store").iterdir())


@pytest.mark.parametrize("cls", [KerasEstimator, GridSearch], ids=lambda c: c.__name__)
def test_two_output_params_cannot_name_the_same_column(cls, tmp_path):
    instance = make(cls, tmp_path, probability_col="prediction")
    with pytest.raises(
        InvalidParamError,
        match=rf"The 'probability_col' param of {cls.__name__} must differ from prediction_col "
        r"\('prediction'\).*Received: 'prediction'",
    ):
        instance.fit(None)
    validate_params(make(cls, tmp_path, probability_col="", raw_prediction_col=""))  # '' twice: no columns


def test_weighted_metrics_must_be_a_list(tmp_path):
    est = make(KerasEstimator, tmp_path, weighted_metrics="accuracy")
    with pytest.raises(
        InvalidParamError, match=r"The 'weighted_metrics' param of KerasEstimator must be a list"
    ):
        est.fit(None)
