"""A model saved where no JVM runs (Dask, Ray, standalone engines) loads with Spark, and a model saved with
Spark loads without it: the same Spark ML metadata file either way, the same predictions."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

pytestmark = [pytest.mark.spark, pytest.mark.keras]

ROWS = pd.DataFrame({"x": list(np.random.default_rng(0).standard_normal((20, 3)).astype(np.float32))})

SAVE = """
import keras, numpy as np, pandas as pd
from cerebro_spark.keras import KerasModel
keras.utils.set_random_seed(1)
inputs = keras.Input((3,), name="x")
model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(keras.layers.Dense(4)(inputs)))
model.compile(optimizer="adam", loss="binary_crossentropy")
model.fit(np.ones((4, 3), "float32"), np.ones((4, 1), "float32"), verbose=0)  # a trained model: its optimizer built
wrapped = KerasModel.from_keras(model, feature_columns=["x"])
wrapped.write().save({path!r})
rows = pd.read_pickle({rows!r})
np.save({out!r}, wrapped.transform(rows)["probability"].map(lambda p: p[1]).to_numpy(dtype=float))
from pyspark import SparkContext
assert SparkContext._gateway is None
"""

LOAD = """
import numpy as np, pandas as pd
from cerebro_spark.keras import KerasModel
rows = pd.read_pickle({rows!r})
np.save({out!r}, KerasModel.load({path!r}).transform(rows)["probability"].map(lambda p: p[1]).to_numpy(dtype=float))
from pyspark import SparkContext
assert SparkContext._gateway is None
"""


def without_spark(code: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-4000:]


def test_saved_without_spark_loads_with_spark_and_back(spark, tmp_path):
    from cerebro_spark.keras import KerasModel

    rows = tmp_path / "rows.pkl"
    ROWS.to_pickle(rows)
    without_spark(SAVE.format(path=str(tmp_path / "a"), rows=str(rows), out=str(tmp_path / "a.npy")))
    assert sorted(os.listdir(tmp_path / "a" / "metadata")) == ["_SUCCESS", "part-00000"]

    loaded = KerasModel.load(str(tmp_path / "a"))  # Spark reads the metadata
    frame = spark.createDataFrame([(row.tolist(),) for row in ROWS["x"]], "x array<float>")
    scored = np.array([p[1] for p in loaded.transform(frame).toPandas()["probability"]])
    np.testing.assert_allclose(scored, np.load(tmp_path / "a.npy"), rtol=1e-5, atol=1e-6)

    loaded.write().save(str(tmp_path / "b"))  # Spark writes the metadata
    without_spark(LOAD.format(path=str(tmp_path / "b"), rows=str(rows), out=str(tmp_path / "b.npy")))
    np.testing.assert_allclose(np.load(tmp_path / "b.npy"), scored, rtol=1e-5, atol=1e-6)
