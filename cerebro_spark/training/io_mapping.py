"""Which feature column feeds each input of a Keras model, and which label column each output.

By name when the model's input (output) layer names are exactly the feature (label) column names, in
any order; else by position. The driver checks a model against the prepared data with it, the workers
order the arrays with it, and ``transform`` orders its input columns with it. No Keras import here.
"""

from __future__ import annotations

from typing import Any

from cerebro_spark.data.spec import match_columns


def input_names(model: Any) -> list[str]:
    """The names of the model's inputs (its ``keras.Input`` layers), in the model's order."""
    return [str(t.name) for t in model.inputs]


def output_names(model: Any) -> list[str]:
    """The names of the model's outputs (the layers that produce them), in the model's order."""
    names = getattr(model, "output_names", None)
    if names:
        return [str(n) for n in names]
    if len(model.outputs) == 1 and getattr(model, "layers", None):  # Sequential
        return [str(model.layers[-1].name)]
    return [str(getattr(t, "name", i)) for i, t in enumerate(model.outputs)]


def column_order(model: Any, features: list[str], labels: list[str]) -> tuple[list[int], list[int]]:
    """For each model input, the index of its feature column; for each output, that of its label column.

    Raises
    ------
    DataError
        When the numbers differ, or the names contradict the positions.

    Examples
    --------
    >>> column_order(model, ["b", "a"], ["y"])  # doctest: +SKIP  (inputs named "a" and "b")
    ([1, 0], [0])
    """
    x = match_columns(input_names(model), features, "feature_columns", "input")
    y = match_columns(output_names(model), labels, "label_columns", "output") if labels else []
    return x, y
