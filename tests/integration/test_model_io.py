"""Which models may share one traced Keras model on a worker (``structure_key``)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.keras


def make(lr=0.1, width=8, dtype=None, activation="relu", functional=False, optimizer="adam"):
    import keras

    if functional:
        inputs = keras.Input((20,))
        hidden = keras.layers.Dense(width, activation=activation, dtype=dtype)(inputs)
        model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(hidden))
    else:
        model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(width, activation=activation, dtype=dtype),
                                  keras.layers.Dense(1, activation="sigmoid")])  # fmt: skip
    opt = keras.optimizers.Adam(lr) if optimizer == "adam" else keras.optimizers.SGD(lr)
    model.compile(optimizer=opt, loss="binary_crossentropy", metrics=["accuracy"])
    return model


def key(model, custom=b""):
    from cerebro_spark.ml._model_io import structure_key

    return structure_key(model, custom)


def test_models_differing_only_in_learning_rate_or_names_share():
    assert key(make(lr=0.1)) == key(make(lr=0.001))
    assert key(make(lr=0.1, functional=True)) == key(make(lr=0.3, functional=True))


@pytest.mark.parametrize(
    "other",
    [
        dict(width=16),
        dict(dtype="float16"),
        dict(activation="tanh"),
        dict(functional=True),
        dict(optimizer="sgd"),
    ],
)
def test_any_other_difference_does_not_share(other):
    assert key(make()) != key(make(**other))


def test_custom_objects_are_part_of_the_key():
    assert key(make(), b"a") != key(make(), b"b")
