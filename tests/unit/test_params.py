"""Every Spark ML class: each Param comes from the one table (doc, default, accessors, constraint), and
constructor defaults equal the Param defaults."""

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
from cerebro_spark.ml._param_table import PARAMS, REQUIRED
from cerebro_spark.ml._params import validate_params

CLASSES = [
    KerasEstimator,
    GridSearch,
    RandomSearch,
    SuccessiveHalvingSearch,
    HyperbandSearch,
    ASHASearch,
    TPESearch,
]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_constructor_takes_every_param_with_its_default(cls):
    instance = cls()
    signature = inspect.signature(cls.__init__).parameters
    for param in instance.params:
        assert param.doc.strip(), f"{cls.__name__}.{param.name} has no doc"
        if param.name in getattr(cls, "_unused_params", ()):  # documented as ignored by this class
            assert param.name not in signature
            continue
        assert param.name in signature, f"{cls.__name__}() does not accept {param.name!r}"
        default = signature[param.name].default
        value = instance.getOrDefault(param) if instance.isDefined(param) else None  # required params: unset
        assert value == default, f"{cls.__name__}.{param.name}"


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_param_comes_from_the_table_with_a_getter_and_a_setter(cls):
    instance = cls()
    for param in instance.params:
        spec = PARAMS[param.name]  # a Param outside the table would raise here
        assert param.doc == spec.doc
        camel = "".join(part.capitalize() for part in param.name.split("_"))
        getter, setter = getattr(instance, f"get{camel}"), getattr(instance, f"set{camel}")
        if spec.default is not REQUIRED and param.name not in cls._defaults:
            assert getter() == spec.default
            assert setter(spec.default) is instance and instance.isSet(param)
    assert instance.setNumEpochs(3) is instance and instance.getNumEpochs() == 3


def test_class_defaults_override_the_table():
    assert (RandomSearch().getNumModels(), ASHASearch().getNumModels(), TPESearch().getNumModels()) == (
        PARAMS["num_models"].default,
        27,
        20,
    )


def test_an_unused_param_is_no_keyword():
    assert "num_epochs" not in inspect.signature(HyperbandSearch.__init__).parameters
    with pytest.raises(
        InvalidParamError, match=r"HyperbandSearch\(\) got unexpected keyword argument\(s\) \['num_epochs'\]"
    ):
        HyperbandSearch(num_epochs=3)
    with pytest.raises(InvalidParamError, match=r"unexpected keyword argument\(s\) \['batchSize'\]"):
        KerasEstimator().setParams(batchSize=3)


def test_a_value_the_converter_refuses_is_an_invalid_param_error():
    with pytest.raises(
        InvalidParamError, match='KerasEstimator: Invalid param value given for param "batch_size"'
    ):
        KerasEstimator(batch_size="many")


@pytest.mark.parametrize(
    ("cls", "name", "value", "expected"),
    [
        (ASHASearch, "reduction_factor", 1, "an int >= 2"),
        (ASHASearch, "max_concurrent", 0, "an int >= 1 or None"),
        (SuccessiveHalvingSearch, "min_epochs", 0, "an int >= 1"),
        (KerasEstimator, "verbose", -1, "an int >= 0"),
        (GridSearch, "mode", "largest", "one of 'auto', 'min', 'max'"),
    ],
)
def test_one_validator_checks_every_class_with_the_table(cls, name, value, expected):
    instance = cls(**{name: value})
    with pytest.raises(InvalidParamError) as raised:
        validate_params(instance, [name])
    assert (
        str(raised.value) == f"The {name!r} param of {cls.__name__} must be {expected}. Received: {value!r}."
    )
