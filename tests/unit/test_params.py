"""Every Spark ML class: each Param is documented, and constructor defaults equal the Param defaults."""

from __future__ import annotations

import inspect

import pytest

from cerebro_spark.ml import (
    ASHASearch,
    GridSearch,
    HyperbandSearch,
    KerasEstimator,
    RandomSearch,
    SuccessiveHalvingSearch,
    TPESearch,
)

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
