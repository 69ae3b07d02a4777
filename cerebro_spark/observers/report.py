"""Pictures of a search: learning curves, the MOP schedule, and a self-contained HTML report.

:func:`plot` draws every model's learning curve (the best model highlighted) above a Gantt view of
the schedule: one row per worker, one bar per unit, coloured by model, evaluation units hatched.
:func:`write_report` puts the leaderboard, those pictures (PNG, base64-embedded) and every model's
parameters and fate in one HTML file that needs nothing else to open. matplotlib is imported on
first use only (the ``viz`` extra); figures are built without pyplot, so no GUI backend is touched.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import math
import numbers
import os
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from cerebro_spark.driver import SearchResult
from cerebro_spark.errors import InvalidParamError, MissingDependencyError
from cerebro_spark.observers.history import leaderboard_frame

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

_INSTALL_HINT = "Plots need matplotlib: pip install 'cerebro-spark[viz]'."


def _figure(width: float, height: float) -> Figure:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(_INSTALL_HINT) from exc
    return Figure(figsize=(width, height), layout="constrained")


def _colors(result: SearchResult) -> dict[str, Any]:
    from matplotlib import colormaps

    ids = list(result.models)
    cmap = colormaps["tab10" if len(ids) <= 10 else "tab20"]
    return {model_id: cmap(i % cmap.N) for i, model_id in enumerate(ids)}


def _check_metric(result: SearchResult, metric: str | None) -> str:
    metric = metric or result.metric
    known = sorted({name for m in result.models.values() for r in m.history for name in r.metrics})
    if known and metric not in known:
        raise InvalidParamError(
            f"No model of run {result.run_id!r} reported the metric {metric!r}. Known metrics: {known}."
        )
    return metric


def plot_curves(result: SearchResult, ax: Axes, metric: str | None = None) -> None:
    """Draw one line per model: ``metric`` (default: the evaluation metric) by epoch.

    The best model is drawn thick and on top; a dot marks each model's best epoch; failed and
    stopped models are dashed.

    Parameters
    ----------
    result : SearchResult
        A search's records.
    ax : matplotlib.axes.Axes
        Where to draw.
    metric : str, optional
        A history metric such as ``"val_loss"`` or ``"loss"``.

    Raises
    ------
    ValueError
        If no model reported ``metric``.
    """
    metric = _check_metric(result, metric)
    colors = _colors(result)
    for model_id, model in result.models.items():
        epochs = [r.epoch for r in model.history if metric in r.metrics]
        values = [r.metrics[metric] for r in model.history if metric in r.metrics]
        best = model_id == result.best_model_id
        label = f"{model_id} (best)" if best else model_id
        style = "-" if model.status in ("completed", "running") else "--"
        ax.plot(
            epochs,
            values,
            style,
            color=colors[model_id],
            label=label,
            marker="o",
            markersize=5 if best else 3,
            linewidth=3.0 if best else 1.3,
            alpha=1.0 if best else 0.65,
            zorder=3 if best else 2,
        )
        if model.best_epoch is not None and metric == result.metric and model.best_epoch in epochs:
            ax.scatter(
                [model.best_epoch],
                [values[epochs.index(model.best_epoch)]],
                s=28 if best else 14,
                color=colors[model_id],
                edgecolor="black",
                linewidth=0.6,
                zorder=4,
            )
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title(
        f"{metric} by epoch ({'lower' if result.mode == 'min' else 'higher'} is better)"
        if metric == result.metric
        else f"{metric} by epoch"
    )
    ax.grid(True, alpha=0.3)
    ax.xaxis.get_major_locator().set_params(integer=True)
    if len(result.models) <= 20:
        ax.legend(fontsize="small", ncols=1 + len(result.models) // 8, loc="best")


def plot_schedule(result: SearchResult, ax: Axes) -> None:
    """Draw the schedule: a row per worker, a bar per unit from its start to its end (worker clock),
    coloured by model; evaluation units are light and hatched.

    Parameters
    ----------
    result : SearchResult
        A search's records.
    ax : matplotlib.axes.Axes
        Where to draw.
    """
    from matplotlib.patches import Patch

    colors = _colors(result)
    origin = min((u.started_at for u in result.units), default=0.0)
    for unit in result.units:
        start, width = unit.started_at - origin, max(unit.finished_at - unit.started_at, 1e-6)
        train = unit.kind == "train"
        ax.broken_barh(
            [(start, width)],
            (unit.worker_id - 0.38, 0.76),
            facecolors=colors[unit.model_id],
            alpha=1.0 if train else 0.45,
            hatch=None if train else "///",
            edgecolor="white",
            linewidth=0.5,
        )
    ax.set_yticks(range(result.num_workers), [f"worker {w}" for w in range(result.num_workers)])
    ax.set_ylim(result.num_workers - 0.5, -0.5)
    ax.set_xlabel("seconds since the first unit started")
    ax.set_title(
        f"Schedule: {len(result.units)} units on {result.num_workers} workers, "
        f"utilization {result.utilization():.0%}"
    )
    ax.grid(True, axis="x", alpha=0.3)
    if len(result.models) <= 20:
        handles = [Patch(color=colors[m], label=m) for m in result.models]
        handles += [
            Patch(facecolor="white", edgecolor="black", label="train unit"),
            Patch(facecolor="white", edgecolor="black", hatch="///", label="eval unit"),
        ]
        ax.legend(handles=handles, fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))


def plot(result: SearchResult, metric: str | None = None) -> Figure:
    """Learning curves of every model (the best highlighted) above the schedule of units on workers.

    Parameters
    ----------
    result : SearchResult
        A search's records (``ModelSelectionModel.result``).
    metric : str, optional
        The metric of the curves; default: the search's evaluation metric.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes: ``fig.axes[0]`` the curves (one line per model), ``fig.axes[1]`` the schedule.

    Raises
    ------
    ValueError
        If no model reported ``metric``.

    Examples
    --------
    >>> fig = plot(model_selection.result)  # doctest: +SKIP
    >>> fig.savefig("search.png")  # doctest: +SKIP
    """
    fig = _figure(11.0, 4.5 + 0.45 * result.num_workers + 1.2)
    curves, schedule = fig.subplots(2, 1, height_ratios=[4.5, 0.45 * result.num_workers + 1.2])
    plot_curves(result, curves, metric)
    plot_schedule(result, schedule)
    return fig


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _curve_metrics(result: SearchResult) -> list[str]:
    """The evaluation metric, then its training counterpart if the models reported it."""
    metrics = [result.metric]
    train = result.metric.removeprefix("val_")
    if train != result.metric and any(train in r.metrics for m in result.models.values() for r in m.history):
        metrics.append(train)
    return metrics


def _text(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return html.escape("" if value is None else str(value))


def _cell(value: Any) -> str:
    """A table cell: numbers right-aligned, text left-aligned."""
    number = isinstance(value, numbers.Number) and not isinstance(value, bool)
    return f'<td class="num">{_text(value)}</td>' if number else f"<td>{_text(value)}</td>"


def _leaderboard_html(result: SearchResult) -> str:
    board = leaderboard_frame(result)
    if board.empty:
        return "<p>No model was trained.</p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in ["rank", *board.columns])
    rows = []
    for rank, row in enumerate(board.itertuples(index=False), start=1):
        best = ' class="best"' if row[0] == result.best_model_id else ""
        cells = "".join(_cell(v) for v in row)
        rows.append(f'<tr{best}><td class="num">{rank}</td>{cells}</tr>')
    return f'<table id="leaderboard"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _models_html(result: SearchResult) -> str:
    rows = []
    for m in result.models.values():
        params = ", ".join(f"{html.escape(str(k))}={_text(v)}" for k, v in m.params.items())
        note = (m.error.splitlines() or [""])[0] if m.error else m.reason
        rows.append(
            f"<tr><td>{html.escape(m.model_id)}</td><td>{html.escape(m.status)}</td>"
            f"<td>{m.epochs}</td><td><code>{params}</code></td><td>{html.escape(note)}</td></tr>"
        )
    head = "<tr><th>model</th><th>status</th><th>epochs</th><th>parameters</th><th>note</th></tr>"
    return f'<table id="models"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px 32px;color:#222}
h1{font-size:22px;margin-bottom:4px} h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
.summary{color:#555;margin:0 0 8px} table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left} th{background:#f3f3f3}
td.num{text-align:right;font-variant-numeric:tabular-nums} tr.best td{background:#e8f4e8;font-weight:600}
img{max-width:100%;border:1px solid #eee}
"""


def write_report(result: SearchResult, path: str | os.PathLike[str], *, title: str | None = None) -> str:
    """Write one self-contained HTML page about a search: a summary, the leaderboard, learning curves
    and the schedule (PNG images embedded as base64) and every model's parameters and fate.

    Parameters
    ----------
    result : SearchResult
        A search's records (``ModelSelectionModel.result``).
    path : str or os.PathLike
        The local file to write; its folder is created if missing.
    title : str, optional
        The page's title; default: ``"Model selection <run_id>"``.

    Returns
    -------
    str
        ``path``, as a string.

    Examples
    --------
    >>> write_report(model_selection.result, "report.html")  # doctest: +SKIP
    'report.html'
    """
    title = title or f"Model selection {result.run_id}"
    curves_fig = _figure(11.0, 4.2)
    metrics = _curve_metrics(result)
    for ax, metric in zip(curves_fig.subplots(1, len(metrics), squeeze=False)[0], metrics, strict=True):
        plot_curves(result, ax, metric)
    schedule_fig = _figure(11.0, 0.45 * result.num_workers + 1.6)
    plot_schedule(result, schedule_fig.subplots())
    best = result.best_model_id or "none"
    summary = (
        f"{len(result.models)} models on {result.num_workers} workers · wall time "
        f"{result.wall_seconds:.1f}s · utilization {result.utilization():.0%} · ranked by "
        f"{html.escape(result.metric)} ({result.mode}) · best model <b>{html.escape(best)}</b>"
    )
    written = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p class="summary">{summary}</p>
<p class="summary">run <code>{html.escape(result.run_id)}</code> · written {written}</p>
<h2>Leaderboard</h2>
{_leaderboard_html(result)}
<h2>Learning curves</h2>
<img alt="learning curves" src="data:image/png;base64,{_png(curves_fig)}">
<h2>Schedule</h2>
<img alt="schedule" src="data:image/png;base64,{_png(schedule_fig)}">
<h2>Models</h2>
{_models_html(result)}
</body></html>
"""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(page)
    logger.info("wrote the report of run %s to %s", result.run_id, path)
    return path
