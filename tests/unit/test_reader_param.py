"""The ``reader`` param: its default, its validation, and a clear error where Petastorm is missing."""

from __future__ import annotations

import dataclasses
import sys

import pytest

from cerebro_spark.data.reader import read_partition
from cerebro_spark.data.spec import ColumnSpec, DatasetSpec, PartitionSpec
from cerebro_spark.errors import InvalidParamError, MissingDependencyError
from cerebro_spark.ml import GridSearch, KerasEstimator
from cerebro_spark.ml._params import validate_params

pytestmark = pytest.mark.petastorm


@pytest.mark.parametrize("cls", [KerasEstimator, GridSearch], ids=lambda c: c.__name__)
def test_reader_defaults_to_pyarrow_and_takes_petastorm(cls):
    assert cls().getReader() == "pyarrow"
    assert cls(reader="petastorm").getReader() == "petastorm"
    validate_params(cls(reader="petastorm"), ["reader"])


def test_an_unknown_reader_is_named_with_the_choices():
    with pytest.raises(
        InvalidParamError,
        match=r"'reader' param of GridSearch must be one of 'pyarrow', 'petastorm'\. Received: 'arrow'",
    ):
        validate_params(GridSearch(reader="arrow"), ["reader"])


def test_the_spec_carries_the_reader_as_a_value():
    spec = DatasetSpec(
        "f" * 32,
        "data/x",
        (ColumnSpec("x", "float32"),),
        (ColumnSpec("y", "int64"),),
        (PartitionSpec("k", 1),),
    )
    assert spec.reader == "pyarrow"
    chosen = dataclasses.replace(spec, reader="petastorm")
    assert DatasetSpec.from_dict(chosen.to_dict()) == chosen
    legacy = {k: v for k, v in spec.to_dict().items() if k != "reader"}  # metadata written before the param
    assert DatasetSpec.from_dict(legacy).reader == "pyarrow"


def test_without_petastorm_the_reader_names_the_extra(monkeypatch, store):
    monkeypatch.setitem(sys.modules, "petastorm", None)  # as if not installed: ``import petastorm`` fails
    spec = DatasetSpec(
        "f" * 32, "data/x", (ColumnSpec("x", "float32"),), (ColumnSpec("y", "int64"),),
        (PartitionSpec("data/x/train/part-00000.parquet", 1),), reader="petastorm",
    )  # fmt: skip
    with pytest.raises(
        MissingDependencyError, match=r"reader='petastorm' needs Petastorm.*cerebro_spark\[petastorm"
    ):
        read_partition(store, spec, "train", 0)
