"""The README's user code runs as written (with the Store pointed at a temporary folder)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.spark, pytest.mark.keras]

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))


def readme_user_code() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## What the user does", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_user_code_runs(spark, tmp_path):
    from synthetic import make_dataframe

    code = readme_user_code()
    assert 'Store.create("file:///shared/experiments")' in code
    code = code.replace("file:///shared/experiments", f"file://{tmp_path}/experiments")
    df = make_dataframe(spark, 1_200, num_features=30, seed=8)
    train_df, test_df = df.randomSplit([0.8, 0.2], seed=1)
    namespace = {"train_df": train_df, "test_df": test_df}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 (our own README)
    result = namespace["result"]
    assert len(result.get_all_model_history()) == 4
    assert all(len(h["val_accuracy"]) == 5 for h in result.get_all_model_history().values())
    assert "prediction" in result.get_best_model().transform(test_df).columns


def test_readme_first_example_runs(spark, tmp_path):
    from synthetic import make_dataframe

    text = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text.split("## Two commands", 1)[0], re.S).group(1)
    assert 'Store.create("/tmp/cerebro")' in code
    code = code.replace('"/tmp/cerebro"', repr(str(tmp_path / "cerebro")))

    def make_estimator(params):
        import keras

        from cerebro_spark.keras import KerasEstimator

        model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(params["width"], activation="relu"),
                                  keras.layers.Dense(1, activation="sigmoid")])  # fmt: skip
        return KerasEstimator(model=model, optimizer=keras.optimizers.Adam(params["lr"]),
                              loss="binary_crossentropy", metrics=["accuracy"], batch_size=32)  # fmt: skip

    namespace = {"spark": spark, "df": make_dataframe(spark, 600, seed=3), "make_estimator": make_estimator}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 (our own README)
    board = namespace["result"].leaderboard()
    assert len(board) == 4 and set(board["status"]) == {"completed"}
