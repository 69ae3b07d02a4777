"""A live view of a MOP search on the driver: per-model epochs, units, best metric, utilization, ETA.

:class:`SearchProgress` is the state (pure: the caller gives the time); :class:`ProgressCallback`
feeds it from the driver's hooks and shows it as a ``rich`` table that updates in place in a terminal,
as an HTML table that updates in place in a notebook (Jupyter, Databricks: one display, updated), or as
one compact line at a bounded rate (logs of ``spark-submit``, CI). This module writes to the terminal on
purpose: it is the package's display.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from cerebro_spark.driver import DriverCallback, EpochRecord, ModelRecord, SearchResult, UnitRecord
from cerebro_spark.errors import InvalidParamError
from cerebro_spark.search import is_better

logger = logging.getLogger(__name__)

_FINAL = ("completed", "stopped", "failed")


@dataclass
class _Model:
    epochs: int = 0
    units_in_epoch: int = 0
    last: float = math.nan
    best: float | None = None


@dataclass
class SearchProgress:
    """What the display shows, updated from units and epochs (no clock, no I/O).

    Parameters
    ----------
    num_workers : int
        Workers of the search (for utilization).
    metric, mode : str
        The evaluation metric and ``"min"``/``"max"``.
    max_epochs : callable
        ``max_epochs(model_id)``: the epochs a model trains if never stopped (from the algorithm).
    units_per_epoch : int
        Units of one model's epoch: one training unit per worker, plus one evaluation unit per
        worker with validation data.
    started : float, optional
        When the search started (seconds, the caller's clock); default: when its first unit was
        submitted (so that starting the workers does not count against the rate).
    """

    num_workers: int
    metric: str
    mode: str
    max_epochs: Callable[[str], int]
    units_per_epoch: int
    started: float | None = None
    models: dict[str, _Model] = field(default_factory=dict)
    statuses: Mapping[str, ModelRecord] = field(default_factory=dict)
    units_done: int = 0
    busy_seconds: float = 0.0
    best: float | None = None
    best_model: str | None = None

    def on_unit(self, unit: UnitRecord) -> None:
        """Count a completed unit and its worker time."""
        if self.started is None:
            self.started = unit.submitted_at
        model = self.models.setdefault(unit.model_id, _Model())
        model.units_in_epoch += 1
        self.units_done += 1
        self.busy_seconds += max(unit.finished_at - unit.started_at, 0.0)

    def on_epoch(self, record: EpochRecord) -> None:
        """Close a model's epoch: its last and best metric, and the search's best."""
        model = self.models.setdefault(record.model_id, _Model())
        model.epochs, model.units_in_epoch = record.epoch, 0
        value = record.metrics.get(self.metric)
        if value is None:
            return
        model.last = value
        if is_better(value, model.best, self.mode):
            model.best = value
        if is_better(value, self.best, self.mode):
            self.best, self.best_model = value, record.model_id

    def status(self, model_id: str) -> str:
        """The model's status in the driver's records (``running`` until bound or recorded)."""
        record = self.statuses.get(model_id)
        return record.status if record is not None else "running"

    def entries(self) -> list[tuple[str, _Model]]:
        """Every model known (from the driver's records, even before its first unit), with its state."""
        ids = dict.fromkeys([*self.statuses, *self.models])
        return [(model_id, self.models.get(model_id) or _Model()) for model_id in ids]

    def units_left(self) -> int:
        """Units still to run if no model stops early (models that ended count for none)."""
        left = 0
        for model_id, model in self.entries():
            if self.status(model_id) in _FINAL:
                continue
            epochs_left = max(self.max_epochs(model_id) - model.epochs, 0)
            left += max(epochs_left * self.units_per_epoch - model.units_in_epoch, 0)
        return left

    def summary(self, now: float) -> dict[str, Any]:
        """Elapsed seconds, units done and left, epochs done and planned, utilization, ETA, best."""
        elapsed = max(now - (now if self.started is None else self.started), 1e-9)
        left = self.units_left()
        rate = self.units_done / elapsed
        entries = self.entries()
        planned = sum(
            m.epochs if self.status(i) in _FINAL else max(self.max_epochs(i), m.epochs) for i, m in entries
        )
        return {
            "elapsed": elapsed,
            "units_done": self.units_done,
            "units_left": left,
            "epochs_done": sum(m.epochs for m in self.models.values()),
            "epochs_planned": planned,
            "models": len(entries),
            "ended": sum(self.status(i) in _FINAL for i, _ in entries),
            "failed": sum(self.status(i) == "failed" for i, _ in entries),
            "utilization": min(self.busy_seconds / (self.num_workers * elapsed), 1.0),
            "eta": left / rate if rate > 0 else math.inf,
            "best": self.best,
            "best_model": self.best_model,
        }

    def line(self, now: float) -> str:
        """One compact line: what a log shows."""
        s = self.summary(now)
        best = "-" if s["best"] is None else f"{s['best']:.4g} ({s['best_model']})"
        return (
            f"search {_clock(s['elapsed'])} | units {s['units_done']}/{s['units_done'] + s['units_left']}"
            f" | epochs {s['epochs_done']}/{s['epochs_planned']} | models {s['models']}"
            f" ({s['ended']} ended, {s['failed']} failed) | best {self.metric} {best}"
            f" | util {s['utilization']:.0%} | ETA {_clock(s['eta'])}"
        )


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class ProgressCallback(DriverCallback):
    """Shows a :class:`SearchProgress` while the search runs.

    Parameters
    ----------
    progress : SearchProgress
        The state to show.
    style : {"auto", "rich", "notebook", "lines"}, default "auto"
        ``"rich"``: a table updated in place in the terminal; ``"notebook"``: an HTML table in the
        cell's output, updated in place (IPython's display ids); ``"lines"``: a line every
        ``interval_s``; ``"auto"``: notebook in a Jupyter kernel, rich in a terminal when it is
        installed, else lines.
    interval_s : float, default 10.0
        The least time between two lines (``"lines"``) or two refreshes (``"rich"``: 0.5 s at most).
    file : file object, optional
        Where to write; default ``sys.stderr``.
    clock : callable, optional
        The time (``time.time`` by default; tests pass a fake).

    Examples
    --------
    >>> progress = SearchProgress(2, "val_loss", "min", max_epochs=lambda model_id: 5, units_per_epoch=4)
    >>> callback = ProgressCallback(progress, style="lines", interval_s=30.0)
    """

    def __init__(
        self,
        progress: SearchProgress,
        *,
        style: str = "auto",
        interval_s: float = 10.0,
        file: IO[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if style not in ("auto", "rich", "notebook", "lines"):
            raise InvalidParamError(
                f"style must be 'auto', 'rich', 'notebook' or 'lines'. Received: style={style!r}"
            )
        self.progress, self.interval_s, self.clock = progress, interval_s, clock
        self.file = file if file is not None else sys.stderr
        self._last_shown = -math.inf
        self._live: Any = None
        self._display: Any = None  # the notebook's display handle
        self._swapped: list[tuple[logging.StreamHandler[Any], Any]] = []
        self.style = _resolve_style(style, self.file)

    def bind(self, models: Mapping[str, ModelRecord]) -> None:
        """Give the display the driver's live model records (for stopped and failed models)."""
        self.progress.statuses = models

    def on_unit_end(self, unit: UnitRecord) -> None:
        """Update and, if the interval has passed, show."""
        self.progress.on_unit(unit)
        self._show()

    def on_epoch_end(self, record: EpochRecord) -> None:
        """Update and, if the interval has passed, show."""
        self.progress.on_epoch(record)
        self._show()

    def _show(self, force: bool = False) -> None:
        now = self.clock()
        interval = min(self.interval_s, 0.5) if self.style in ("rich", "notebook") else self.interval_s
        if not force and now - self._last_shown < interval:
            return
        self._last_shown = now
        if self.style == "lines":
            self.file.write(self.progress.line(now) + "\n")
            self.file.flush()
            return
        if self.style == "notebook":
            self._show_in_notebook(now)
            return
        if self._live is None:
            from rich.console import Console
            from rich.live import Live

            console = Console(file=self.file)
            self._live = Live(console=console, auto_refresh=False, transient=False)
            self._start_live()
        self._live.update(_rich_table(self.progress, now), refresh=True)

    def _show_in_notebook(self, now: float) -> None:
        """One output of the cell, replaced at each refresh: the table as HTML, the line as plain text."""
        from IPython.display import display

        bundle = {"text/html": _html_table(self.progress, now), "text/plain": self.progress.line(now)}
        if self._display is None:
            self._display = display(bundle, raw=True, display_id=True)
        else:
            self._display.update(bundle, raw=True)

    def _start_live(self) -> None:
        """Start the live table; log handlers writing to the terminal go through it meanwhile (rich
        prints their lines above the table instead of breaking it)."""
        before = {id(sys.stdout): "stdout", id(sys.stderr): "stderr"}
        self._live.start()
        for owner in (logging.getLogger(), logging.getLogger("cerebro_spark")):
            for handler in owner.handlers:
                name = before.get(id(getattr(handler, "stream", None)))
                if isinstance(handler, logging.StreamHandler) and name is not None:
                    self._swapped.append((handler, handler.setStream(getattr(sys, name))))

    def close(self, result: SearchResult | None = None) -> None:
        """Show the final state (always) and stop the live display."""
        self._show(force=True)
        if self._live is not None:
            for handler, stream in self._swapped:
                handler.setStream(stream)
            self._swapped.clear()
            self._live.stop()
            self._live = None


def _resolve_style(style: str, file: IO[str]) -> str:
    if style != "auto":
        return style
    if in_notebook():
        return "notebook"
    try:
        from rich.console import Console
    except ImportError:
        return "lines"
    return "rich" if Console(file=file).is_terminal else "lines"


def in_notebook() -> bool:
    """Whether this process is a notebook's kernel (Jupyter, JupyterLab, VS Code, Databricks)."""
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    if shell is None:
        return False
    return type(shell).__name__ == "ZMQInteractiveShell" or "DATABRICKS_RUNTIME_VERSION" in os.environ


def _html_table(progress: SearchProgress, now: float) -> str:
    """The live table as self-contained HTML (inline styles), through rich's HTML export."""
    import io

    try:
        from rich.console import Console
    except ImportError:  # rich is in the viz extra: without it, the line
        import html

        return f"<pre>{html.escape(progress.line(now))}</pre>"
    console = Console(  # not rich's own Jupyter output: the HTML goes into this module's one display
        record=True, file=io.StringIO(), width=110, color_system="truecolor", force_jupyter=False
    )
    console.print(_rich_table(progress, now))
    return console.export_html(
        inline_styles=True, code_format='<pre style="font-family:monospace">{code}</pre>'
    )


def _rich_table(progress: SearchProgress, now: float, max_rows: int = 20) -> Any:
    from rich.table import Table

    s = progress.summary(now)
    table = Table(title=progress.line(now), title_justify="left", expand=False)
    for name in ("model", "epochs", "units (epoch)", "status", f"last {progress.metric}", "best"):
        table.add_column(name, justify="left" if name in ("model", "status") else "right")
    sign = 1.0 if progress.mode == "min" else -1.0
    order = sorted(
        progress.entries(),
        key=lambda kv: (
            progress.status(kv[0]) in _FINAL,
            sign * (kv[1].best or 0.0) if kv[1].best is not None else math.inf,
        ),
    )
    for model_id, m in order[:max_rows]:
        bar = _bar(m.epochs, max(progress.max_epochs(model_id), m.epochs, 1))
        style = "bold green" if model_id == s["best_model"] else None
        table.add_row(
            model_id,
            f"{bar} {m.epochs}/{progress.max_epochs(model_id)}",
            f"{m.units_in_epoch}/{progress.units_per_epoch}",
            progress.status(model_id),
            "" if math.isnan(m.last) else f"{m.last:.4g}",
            "" if m.best is None else f"{m.best:.4g}",
            style=style,
        )
    if len(order) > max_rows:
        table.caption = f"... and {len(order) - max_rows} more models"
    return table


def _bar(done: int, total: int, width: int = 10) -> str:
    filled = round(width * done / total)
    return "█" * filled + "░" * (width - filled)
