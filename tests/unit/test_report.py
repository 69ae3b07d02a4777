"""Plots and the HTML report of a hand-built SearchResult (matplotlib, Agg; no Spark)."""

from __future__ import annotations

import base64
import re

import matplotlib
import pytest

from cerebro_spark.errors import InvalidParamError
from cerebro_spark.ml.selection import ModelSelectionModel
from cerebro_spark.observers.report import plot, write_report
from cerebro_spark.testing.results import fake_search_result

matplotlib.use("Agg")


def test_plot_draws_one_line_per_model_and_highlights_the_best():
    result = fake_search_result()
    fig = plot(result)
    curves, schedule = fig.axes[:2]
    lines = {line.get_label(): line for line in curves.get_lines()}
    assert set(lines) == {"m0000", "m0001 (best)", "m0002"}
    assert lines["m0001 (best)"].get_linewidth() > lines["m0000"].get_linewidth()
    assert list(lines["m0001 (best)"].get_ydata()) == pytest.approx([0.8, 0.5, 0.3])
    assert lines["m0002"].get_linestyle() == "--"  # failed
    assert curves.get_ylabel() == "val_loss"
    # the schedule: one bar per unit, on one row per worker
    assert len(schedule.collections) == len(result.units)
    assert [t.get_text() for t in schedule.get_yticklabels()] == ["worker 0", "worker 1"]


def test_plot_of_another_metric_and_an_unknown_metric():
    fig = plot(fake_search_result(), metric="accuracy")
    assert fig.axes[0].get_ylabel() == "accuracy" and len(fig.axes[0].get_lines()) == 3
    with pytest.raises(InvalidParamError, match=r"reported the metric 'auc'\. Known metrics: \['accuracy'"):
        plot(fake_search_result(), metric="auc")


def test_plot_renders_to_png(tmp_path):
    model = ModelSelectionModel()
    model.result = fake_search_result()
    path = tmp_path / "search.png"
    model.plot().savefig(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_is_self_contained_html_with_leaderboard_and_images(tmp_path):
    model = ModelSelectionModel()
    model.result = fake_search_result()
    path = model.report(str(tmp_path / "out" / "report.html"))
    page = open(path, encoding="utf-8").read()
    assert page.startswith("<!DOCTYPE html>") and "Model selection run-fake" in page
    board = re.search(r'<table id="leaderboard">.*?</table>', page, re.S).group(0)
    order = re.findall(r'<tr(?: class="best")?><td class="num">\d+</td><td>(m\d+)</td>', board)
    assert order == ["m0001", "m0000", "m0002"]  # best first
    assert '<tr class="best"><td class="num">1</td><td>m0001</td>' in board
    assert "param_lr" in board and "val_accuracy" in board
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 2
    assert all(base64.b64decode(i)[:4] == b"\x89PNG" for i in images)
    assert not re.search(r'(src|href)="(?!data:)', page)  # nothing to fetch
    assert "boom" in page  # the failed model's reason


def test_report_escapes_html_in_params(tmp_path):
    result = fake_search_result()
    result.models["m0000"].params["act"] = "<script>alert(1)</script>"
    page = open(write_report(result, tmp_path / "r.html"), encoding="utf-8").read()
    assert "<script>" not in page and "&lt;script&gt;" in page
