"""The history table as a Spark DataFrame."""

from __future__ import annotations

import pytest

from cerebro_spark.errors import InvalidParamError
from cerebro_spark.ml.selection import ModelSelectionModel
from cerebro_spark.observers.history import history_spark_frame
from cerebro_spark.testing.results import fake_search_result

pytestmark = pytest.mark.spark


def test_spark_history_has_the_rows_and_types_of_the_pandas_one(spark):
    model = ModelSelectionModel()
    model.result = fake_search_result()
    result = model.result
    result.models["m0002"].params["act"] = ["a", 1]  # a value no Spark type holds: stored as a string
    df = model.get_history_spark_df(spark)
    expected = model.get_history_df()
    assert df.columns == list(expected.columns)
    types = dict(df.dtypes)
    assert types["epoch"] == "bigint" and types["param_lr"] == "double" and types["param_width"] == "bigint"
    assert (
        types["param_act"] == "string"
        and types["val_loss"] == "double"
        and types["is_best_epoch"] == "boolean"
    )
    rows = df.orderBy("model_id", "epoch").collect()
    assert len(rows) == len(expected) == 7
    assert rows[-1].param_act == "['a', 1]"
    best = df.where("is_best_epoch").orderBy("val_loss").first()
    assert (best.model_id, best.epoch) == ("m0001", 3)


def test_spark_history_needs_a_session():
    with pytest.raises(InvalidParamError, match="needs a SparkSession. Received: spark=str"):
        history_spark_frame(fake_search_result(), "spark")
