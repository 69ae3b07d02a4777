"""The live progress display, driven by the driver on fake tasks (no Spark, no TensorFlow)."""

from __future__ import annotations

import io
import re

import pytest

from cerebro_spark.backend.local import LocalBackend
from cerebro_spark.driver import MopDriver, RunSettings, UnitRecord
from cerebro_spark.errors import InvalidParamError
from cerebro_spark.observers.progress import ProgressCallback, SearchProgress
from cerebro_spark.observers.search_observers import SearchObservers
from cerebro_spark.search import GridSearchAlgorithm, hp_choice
from cerebro_spark.testing.fakes import fake_dataset, fake_tasks
from cerebro_spark.training.model_spec import ModelSpec


def run_with_progress(store, style="lines", interval_s=0.0, clock=None, epochs=2, space=None):
    space = space or {"rate": hp_choice([1.0, 4.0])}
    algorithm = GridSearchAlgorithm(space, num_epochs=epochs)
    out = io.StringIO()
    kwargs = {"clock": clock} if clock else {}
    callback = ProgressCallback(SearchProgress(2, "val_loss", "min", algorithm.max_epochs, 4),
                                style=style, interval_s=interval_s, file=out, **kwargs)  # fmt: skip

    def factory(trial):
        return ModelSpec(run_id="r1", model_id=trial.model_id, batch_size=8, params=dict(trial.params))

    settings = RunSettings(run_id="r1", metric="val_loss", mode="min", seed=1)
    driver = MopDriver(LocalBackend(2), store, fake_dataset(2), algorithm, factory, settings,
                       tasks=fake_tasks(), callbacks=[callback])  # fmt: skip
    callback.bind(driver.models)
    try:
        result = driver.run()
    finally:
        callback.close()
    return result, out.getvalue()


def test_lines_show_units_epochs_best_utilization_and_eta(store):
    result, text = run_with_progress(store)
    lines = text.splitlines()
    assert len(lines) == len(result.units) + 4 + 1  # every unit, every epoch, and the final line
    first, last = lines[0], lines[-1]
    assert re.search(r"units 1/16 \| epochs 0/4 \| models 2 \(0 ended, 0 failed\)", first)
    best = result.models[result.best_model_id].best_metrics()["val_loss"]
    assert f"units 16/16 | epochs 4/4 | models 2 (2 ended, 0 failed) | best val_loss {best:.4g} " in last
    assert f"({result.best_model_id})" in last and last.endswith("ETA 0:00")
    assert re.search(r"util \d+%", last)


def test_lines_come_at_a_bounded_rate(store):
    _, text = run_with_progress(store, interval_s=60.0, clock=lambda: 1_000.0)
    assert len(text.splitlines()) == 2  # the first event, then the final state


def test_a_failed_model_counts_as_ended_and_leaves_the_eta(store):
    result, text = run_with_progress(store, epochs=3, space={"fail_at_epoch": hp_choice([None, 2])})
    assert sorted(m.status for m in result.models.values()) == ["completed", "failed"]
    last = text.splitlines()[-1]
    assert "epochs 4/4 | models 2 (2 ended, 1 failed)" in last and last.endswith("ETA 0:00")


def test_eta_from_the_rate_of_units():
    progress = SearchProgress(2, "val_loss", "min", lambda model_id: 2, units_per_epoch=4, started=0.0)
    for i in range(4):  # model a: its first epoch, 4 units of 1 s on 2 workers in 2 s
        progress.on_unit(
            UnitRecord("a", 1, i % 2, "train", i % 2, 1, 10, {}, {}, 0.0, i // 2, i // 2 + 1, 0.0)
        )
    summary = progress.summary(now=2.0)
    assert summary["units_left"] == 4 and summary["eta"] == pytest.approx(2.0)
    assert summary["utilization"] == pytest.approx(1.0)
    assert progress.line(2.0).endswith("util 100% | ETA 0:02")


def test_rich_table_lists_every_model(store):
    pytest.importorskip("rich")
    result, text = run_with_progress(store, style="rich")
    for model_id in result.models:
        assert model_id in text
    assert "units 16/16" in text and "2/2" in text


@pytest.mark.parametrize("verbose", [0, 1])
def test_verbose_zero_shows_nothing(store, verbose):
    algorithm = GridSearchAlgorithm({"rate": 1.0}, 1)
    observers = SearchObservers.create(
        tensorboard=False,
        mlflow_experiment=None,
        verbose=verbose,
        dataset=fake_dataset(2),
        store=store,
        run_id="r1",
        metric="loss",
        mode="min",
        max_epochs=algorithm.max_epochs,
        params={},
    )
    assert [type(c).__name__ for c in observers.callbacks] == (["ProgressCallback"] if verbose else [])


def test_a_bad_style_is_named():
    with pytest.raises(
        InvalidParamError, match="style must be 'auto', 'rich', 'notebook' or 'lines'. Received: style='tqdm'"
    ):
        ProgressCallback(SearchProgress(2, "loss", "min", lambda m: 1, 2), style="tqdm")


def test_notebook_style_updates_one_html_display(store, monkeypatch):
    # A notebook gets one output, replaced in place: HTML (the table) with a plain-text line beside it,
    # never terminal escape codes. IPython's display functions are the kernel's: recorded here.
    from IPython import display as display_module  # ipykernel's, in the dev extra

    shown = []

    class Handle:
        def update(self, bundle, raw):
            shown.append(("update", bundle))

    def display(bundle, raw, display_id):
        assert raw and display_id is True
        shown.append(("display", bundle))
        return Handle()

    monkeypatch.setattr(display_module, "display", display)
    result, text = run_with_progress(store, style="notebook")
    assert text == ""  # nothing written to the stream
    assert [kind for kind, _ in shown].count("display") == 1 and len(shown) > 2
    final = shown[-1][1]
    assert "units 16/16" in final["text/plain"]
    assert all(model_id in final["text/html"] for model_id in result.models)
    assert "<table" in final["text/html"] or "<pre" in final["text/html"]
    assert all("\x1b[" not in bundle["text/html"] for _, bundle in shown)


def test_auto_style_is_notebook_in_a_kernel_only():
    from cerebro_spark.observers import progress

    assert not progress.in_notebook()  # pytest is no kernel
    assert progress._resolve_style("auto", io.StringIO()) == "lines"  # a file is not a terminal
