"""The check that a model's outputs fit the label columns, before any Spark job (Keras, no Spark)."""

from __future__ import annotations

import dataclasses

import keras
import pytest

from cerebro_spark.data.spec import ColumnSpec
from cerebro_spark.errors import DataError
from cerebro_spark.ml._checks import check_model_fits_data
from cerebro_spark.testing.fakes import fake_dataset


def dataset(feature_shape, label_shape):
    return dataclasses.replace(
        fake_dataset(2),
        features=(ColumnSpec("x", "float32", feature_shape),),
        labels=(ColumnSpec("y", "int64", label_shape),),
    )


def sequence_model(steps: int, classes: int) -> keras.Model:
    inputs = keras.Input((steps, 3), name="x")
    outputs = keras.layers.Dense(classes, activation="softmax", name="y")(inputs)
    return keras.Model(inputs, outputs)


def test_class_indices_per_step_fit_a_sequence_output():
    check_model_fits_data(sequence_model(6, 2), dataset((6, 3), (6,)), "m0000")


def test_one_hot_labels_must_match_the_output():
    inputs = keras.Input((4,), name="x")
    model = keras.Model(inputs, keras.layers.Dense(1, name="y")(inputs))
    with pytest.raises(DataError, match=r"output of shape \(1,\).*label column 'y' has rows of shape \(3,\)"):
        check_model_fits_data(model, dataset((4,), (3,)), "m0000")


def test_sequence_labels_of_another_length_are_refused():
    with pytest.raises(DataError, match=r"output of shape \(6, 2\).*rows of shape \(5,\)"):
        check_model_fits_data(sequence_model(6, 2), dataset((6, 3), (5,)), "m0000")
