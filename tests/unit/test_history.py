"""The history table of a search, from a hand-built SearchResult (no Spark)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from cerebro_spark.ml.selection import ModelSelectionModel
from cerebro_spark.observers.history import history_columns, history_frame
from cerebro_spark.testing.results import LOSSES, fake_search_result


def selection_model():
    model = ModelSelectionModel()
    model.result = fake_search_result()
    return model


def test_one_row_per_model_and_epoch_with_params_metrics_and_status():
    frame = selection_model().get_history_df()
    assert isinstance(frame, pd.DataFrame)
    assert len(frame) == sum(len(v) for v in LOSSES.values()) == 7
    assert list(zip(frame.model_id, frame.epoch, strict=True))[:4] == [
        ("m0000", 1), ("m0000", 2), ("m0000", 3), ("m0001", 1)
    ]  # fmt: skip
    assert list(frame.columns[:6]) == ["model_id", "epoch", "status", "param_lr", "param_width", "param_act"]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(frame.columns)
    row = frame[(frame.model_id == "m0001") & (frame.epoch == 3)].iloc[0]
    assert row.param_lr == 0.001 and row.param_width == 64 and row.status == "completed"
    assert row.val_loss == pytest.approx(0.3) and row.is_best_epoch
    assert set(frame[frame.model_id == "m0002"].status) == {"failed"}
    assert frame.is_best_epoch.sum() == 3  # one best epoch per model


def test_training_metrics_come_before_validation_metrics():
    columns = history_columns(fake_search_result())
    metrics = columns[columns.index("param_act") + 1 : columns.index("train_rows")]
    assert metrics == ["accuracy", "loss", "val_accuracy", "val_loss"]


def test_missing_metric_is_nan_and_missing_param_is_none():
    result = fake_search_result()
    result.models["m0000"].params["dropout"] = 0.5
    result.models["m0001"].history[0].metrics["auc"] = 0.9
    frame = history_frame(result)
    assert frame.loc[frame.model_id == "m0001", "param_dropout"].isna().all()
    assert math.isnan(frame.loc[frame.model_id == "m0000", "auc"].iloc[0])
    assert frame.loc[(frame.model_id == "m0001") & (frame.epoch == 1), "auc"].iloc[0] == 0.9


def test_a_search_without_epochs_gives_an_empty_table_with_columns():
    result = fake_search_result()
    for model in result.models.values():
        model.history.clear()
    frame = history_frame(result)
    assert frame.empty and list(frame.columns[:3]) == ["model_id", "epoch", "status"]


def test_no_result_is_a_clear_error():
    with pytest.raises(Exception, match="holds no search result"):
        ModelSelectionModel().get_history_df()


def test_nested_params_become_dotted_columns():
    result = fake_search_result()
    result.models["m0000"].params["arch"] = {"kind": "mlp", "layers": 2}
    result.models["m0001"].params["arch"] = {"kind": "cnn", "filters": 16}
    frame = history_frame(result)
    assert {"param_arch.kind", "param_arch.layers", "param_arch.filters"} <= set(frame.columns)
    first = frame[frame.model_id == "m0001"].iloc[0]
    assert first["param_arch.kind"] == "cnn" and first["param_arch.filters"] == 16
    assert pd.isna(first["param_arch.layers"])
    board = selection_model().leaderboard()
    assert "param_lr" in board.columns
