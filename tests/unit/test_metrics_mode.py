"""Metric modes: inference from Keras metric names, resolution, comparisons."""

from __future__ import annotations

import math

import pytest

from cerebro_spark.errors import InvalidParamError
from cerebro_spark.search import best_index, infer_mode, is_better, resolve_mode

NAN = math.nan

MIN_NAMES = [
    "loss",
    "val_loss",
    "train_loss",
    "binary_crossentropy",
    "val_sparse_categorical_crossentropy",
    "categorical_crossentropy",
    "mse",
    "val_mae",
    "mape",
    "msle",
    "mean_squared_error",
    "val_root_mean_squared_error",
    "mean_absolute_percentage_error",
    "hinge",
    "squared_hinge",
    "categorical_hinge",
    "kld",
    "kl_divergence",
    "poisson",
    "logcosh",
    "huber",
    "reconstruction_loss",
    "val_iou_loss",  # a loss, despite the iou
    "Val_Loss",
]
MAX_NAMES = [
    "accuracy",
    "val_accuracy",
    "acc",
    "val_acc",
    "val_sparse_categorical_accuracy",
    "binary_accuracy",
    "top_k_categorical_accuracy",
    "auc",
    "val_auc_1",  # Keras numbers repeated metrics
    "precision",
    "recall",
    "f1",
    "f1_score",
    "val_weighted_f1_score",
    "r2",
    "r2_score",
    "mean_iou",
    "val_iou",
    "binary_iou",
]


@pytest.mark.parametrize("name", MIN_NAMES)
def test_loss_like_names_are_minimized(name):
    assert infer_mode(name) == "min"


@pytest.mark.parametrize("name", MAX_NAMES)
def test_score_like_names_are_maximized(name):
    assert infer_mode(name) == "max"


@pytest.mark.parametrize("name", ["val_custom_metric", "throughput", "val_", ""])
def test_unknown_names_ask_for_an_explicit_mode(name):
    with pytest.raises(
        InvalidParamError,
        match=rf"The mode cannot be inferred for metric '{name}': pass mode='min' or mode='max'\.",
    ):
        infer_mode(name)


def test_infer_mode_needs_a_str():
    with pytest.raises(InvalidParamError, match=r"metric must be a str\. Received: metric=None"):
        infer_mode(None)  # type: ignore[arg-type]


def test_resolve_mode():
    assert resolve_mode("val_accuracy", "auto") == "max"
    assert resolve_mode("val_accuracy", "min") == "min"
    assert resolve_mode("anything_at_all", "max") == "max"
    with pytest.raises(
        InvalidParamError, match=r"mode must be 'auto', 'min' or 'max'\. Received: mode='minimum'"
    ):
        resolve_mode("val_loss", "minimum")
    with pytest.raises(InvalidParamError, match=r"mode cannot be inferred for metric 'my_metric'"):
        resolve_mode("my_metric", "auto")


@pytest.mark.parametrize(
    ("a", "b", "mode", "expected"),
    [
        (0.1, 0.2, "min", True),
        (0.2, 0.1, "min", False),
        (0.2, 0.1, "max", True),
        (0.1, 0.1, "max", False),  # equal is not better
        (0.1, None, "min", True),
        (-math.inf, None, "max", True),
        (NAN, None, "min", False),
        (NAN, 0.5, "max", False),
        (0.5, NAN, "max", True),
        (0.5, NAN, "min", True),
    ],
)
def test_is_better(a, b, mode, expected):
    assert is_better(a, b, mode) is expected


def test_is_better_rejects_auto():
    with pytest.raises(InvalidParamError, match=r"mode must be 'min' or 'max'\. Received: mode='auto'"):
        is_better(1.0, 2.0, "auto")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("values", "mode", "expected"),
    [
        ([0.3, 0.1, 0.1, 0.2], "min", 1),  # ties: earliest
        ([0.3, 0.1, 0.3], "max", 0),
        ([NAN, 0.4, NAN, 0.9], "max", 3),
        ([NAN, 0.4, NAN, 0.9], "min", 1),
        ([NAN, NAN], "min", None),
        ([], "max", None),
        ((1.0,), "min", 0),
    ],
)
def test_best_index(values, mode, expected):
    assert best_index(values, mode) == expected


def test_best_index_rejects_bad_mode():
    with pytest.raises(InvalidParamError, match=r"mode must be 'min' or 'max'\. Received: mode='MAX'"):
        best_index([1.0], "MAX")  # type: ignore[arg-type]
