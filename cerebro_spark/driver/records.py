"""What a search leaves behind: per-unit records, per-epoch records, per-model records.

Plain dataclasses, JSON-ready through ``to_dict``; the driver writes them to the Store as it goes
(``journal.jsonl``, ``history.jsonl``) and returns them in a :class:`SearchResult`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class ModelStatus(str, Enum):
    """Where a model of the search is; its value is what records, JSON files and snapshots show.

    A ``str``: ``ModelStatus.FAILED == "failed"``, and it prints, formats and serializes as its
    value. The :class:`~cerebro_spark.driver.book.ModelBook` moves models between these states and
    stores the plain value in ``ModelRecord.status`` (so pickles, Spark rows and JSON see a ``str``).
    """

    RUNNING = "running"  # the scheduler hands out its units
    PAUSED = "paused"  # between epochs, until the search algorithm resumes or stops it
    COMPLETED = "completed"  # trained every epoch it was meant to
    STOPPED = "stopped"  # ended early, by the search algorithm or the user
    FAILED = "failed"  # a unit failed or its loss diverged; final

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, format_spec: str) -> str:
        return format(str(self.value), format_spec)


@dataclass(frozen=True, slots=True)
class UnitRecord:
    """One completed unit: which model, epoch, partition, kind, on which worker, when, and its result."""

    model_id: str
    epoch: int
    partition: int
    kind: str
    worker_id: int
    version: int
    rows: int
    metrics: dict[str, float]
    timings: dict[str, float]
    submitted_at: float
    started_at: float
    finished_at: float
    received_at: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class EpochRecord:
    """One epoch of one model: row-weighted training metrics and validation metrics (``val_`` names)."""

    model_id: str
    epoch: int
    metrics: dict[str, float]
    version: int
    train_rows: int
    val_rows: int
    train_seconds: float
    finished_at: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ModelRecord:
    """A model of the search: its configuration, history and fate."""

    model_id: str
    params: dict[str, Any]
    status: str = (
        ModelStatus.RUNNING.value
    )  # a ModelStatus value: running | paused | completed | stopped | failed
    reason: str = ""
    history: list[EpochRecord] = field(default_factory=list)
    version: int = 0
    best_epoch: int | None = None
    best_version: int | None = None
    error: str = ""

    @property
    def epochs(self) -> int:
        return len(self.history)

    def metric_series(self) -> dict[str, list[float]]:
        """Keras-style history: metric name -> one value per epoch."""
        series: dict[str, list[float]] = {}
        for record in self.history:
            for name, value in record.metrics.items():
                series.setdefault(name, []).append(value)
        return series

    def best_metrics(self) -> dict[str, float]:
        if self.best_epoch is None:
            return {}
        return dict(self.history[self.best_epoch - 1].metrics)


@dataclass
class SearchResult:
    """Everything a finished search knows. ``models`` keeps the order models were added in."""

    run_id: str
    metric: str
    mode: str
    num_workers: int
    models: dict[str, ModelRecord]
    units: list[UnitRecord]
    wall_seconds: float
    best_model_id: str | None

    def utilization(self) -> float:
        """Sum of unit compute time (worker clock) over (P x wall time)."""
        busy = sum(u.finished_at - u.started_at for u in self.units)
        return busy / (self.num_workers * self.wall_seconds) if self.wall_seconds > 0 else 0.0

    def schedule(self) -> list[tuple[str, int, int, str, int]]:
        """(model_id, epoch, partition, kind, worker_id) of every unit, in completion order."""
        return [(u.model_id, u.epoch, u.partition, u.kind, u.worker_id) for u in self.units]


def weighted_means(parts: Iterable[tuple[Mapping[str, float], int]]) -> dict[str, float]:
    """Row-weighted mean of each metric over the parts (a part with 0 rows counts for nothing).

    Sums with ``math.fsum`` (exactly rounded), so the mean does not depend on the order of the
    parts: units complete in an order that timing decides, and the history must not.
    """
    terms: dict[str, list[float]] = {}
    weights: dict[str, int] = {}
    for metrics, rows in parts:
        if rows <= 0:
            continue
        for name, value in metrics.items():
            terms.setdefault(name, []).append(float(value) * rows)
            weights[name] = weights.get(name, 0) + rows
    return {name: math.fsum(terms[name]) / weights[name] for name in terms}
