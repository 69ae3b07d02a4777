"""Synthetic binary-classification data as a Spark or pandas DataFrame (nothing is downloaded).

The label depends non-linearly on a few of the features, so wider networks and better learning
rates really do score higher: a fair small workload for model selection.
"""

from __future__ import annotations

import numpy as np


def make_rows(num_rows: int, num_features: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features (float32, standard normal) and 0/1 labels from a fixed random rule."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((num_rows, num_features)).astype(np.float32)
    w = rng.standard_normal(num_features).astype(np.float32)
    score = x @ w + 1.5 * x[:, 0] * x[:, 1] - np.abs(x[:, 2]) + 0.8
    y = (score + 0.5 * rng.standard_normal(num_rows) > 0).astype(np.int64)
    return x, y


def make_dataframe(spark, num_rows: int, num_features: int = 20, seed: int = 0, num_slices: int = 4):
    """A DataFrame with an array<float> ``features`` column and a long ``label`` column."""
    x, y = make_rows(num_rows, num_features, seed)
    rows = [(features.tolist(), int(label)) for features, label in zip(x, y, strict=True)]
    return spark.createDataFrame(rows, "features array<float>, label long").repartition(num_slices)


def make_pandas(num_rows: int, num_features: int = 20, seed: int = 0):
    """The rows of :func:`make_dataframe` as a pandas DataFrame (for the engines without Spark)."""
    import pandas as pd

    x, y = make_rows(num_rows, num_features, seed)
    return pd.DataFrame({"features": list(x), "label": y})
