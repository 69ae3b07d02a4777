"""What a run records as it goes: the :class:`RunRecorder`.

- ``journal.jsonl``: every completed unit, in completion order (also kept in memory);
- each model's ``history.jsonl``: one line per epoch;
- ``events.jsonl``: what else changed the search between units (a model failed, a user command),
  each with the number of journal units before it (see :mod:`cerebro_spark.driver.resume`);
- each model's checkpoints: the state a training unit returned, written before the unit is journaled,
  and the deletion of those that are neither a model's latest nor its best;
- ``search.json``, the run record: settings, status, every model's state.

The driver's callbacks hear of each unit and epoch through it too. A resume replays the journal
with the recorder :meth:`~RunRecorder.muted`: nothing is written and no callback is called. The
writes are queued (:class:`~cerebro_spark.driver.background_store.BackgroundStore`); the run's end
waits for them (:meth:`~RunRecorder.close`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from cerebro_spark._json import jsonable
from cerebro_spark.backend.base import Backend
from cerebro_spark.data.spec import DatasetSpec
from cerebro_spark.driver.background_store import BackgroundStore
from cerebro_spark.driver.records import EpochRecord, ModelRecord, ModelStatus, SearchResult, UnitRecord
from cerebro_spark.driver.settings import DriverCallback, RunSettings
from cerebro_spark.errors import TrainingError
from cerebro_spark.search import SearchAlgorithm
from cerebro_spark.store import layout

logger = logging.getLogger(__name__)


def events_key(run_id: str) -> str:
    """The run's log of events between units: ``runs/<run_id>/events.jsonl``."""
    return f"{layout.run_root(run_id)}/events.jsonl"


class RunRecorder:
    """Writes what one run records to its Store and tells the driver's callbacks.

    Parameters
    ----------
    store : BackgroundStore
        Where the run's files go (the writes queued, in order).
    settings : RunSettings
        The run's settings (its id names the files).
    callbacks : sequence of DriverCallback
        Told of each unit and epoch.
    dataset, backend, search
        Described in the run record; ``search``'s state is read now, before any epoch, as the
        algorithm's settings a resume must share.

    Attributes
    ----------
    units : list of UnitRecord
        The journal's units, in completion order (it grows while muted too).
    """

    def __init__(
        self,
        store: BackgroundStore,
        settings: RunSettings,
        callbacks: Sequence[DriverCallback],
        *,
        dataset: DatasetSpec,
        backend: Backend,
        search: SearchAlgorithm,
    ) -> None:
        self.store = store
        self.settings = settings
        self.callbacks = list(callbacks)
        self.units: list[UnitRecord] = []
        self._dataset, self._backend, self._search = dataset, backend, search
        self._algorithm_config = search.state()
        self._muted = False

    @property
    def run_id(self) -> str:
        return self.settings.run_id

    @contextlib.contextmanager
    def muted(self) -> Iterator[None]:
        """While the block runs, write nothing and call no callback."""
        self._muted = True
        try:
            yield
        finally:
            self._muted = False

    def unit(self, unit: UnitRecord) -> None:
        """A unit completed: keep it, journal it, tell the callbacks."""
        self.units.append(unit)
        if self._muted:
            return
        self.store.append_text(layout.journal_key(self.run_id), json.dumps(unit.to_dict()) + "\n")
        for callback in self.callbacks:
            callback.on_unit_end(unit)

    def checkpoint(self, model_id: str, version: int, state: bytes) -> None:
        """Write a model's state after its ``version``-th unit (before the unit is journaled)."""
        if not self._muted:
            self.store.write_bytes(layout.checkpoint_key(self.run_id, model_id, version), state)

    def history(self, record: EpochRecord) -> None:
        """Append an epoch to its model's ``history.jsonl``."""
        if not self._muted:
            self.store.append_text(
                layout.history_key(self.run_id, record.model_id), json.dumps(record.to_dict()) + "\n"
            )

    def epoch_end(self, record: EpochRecord) -> None:
        """Tell the callbacks that a model finished an epoch."""
        if not self._muted:
            for callback in self.callbacks:
                callback.on_epoch_end(record)

    def event(self, event: dict[str, Any]) -> None:
        """Record what changed the search between units, for a resume to replay at the same point."""
        if not self._muted:
            line = {**event, "at_unit": len(self.units)}
            self.store.append_text(events_key(self.run_id), json.dumps(line) + "\n")

    def delete_checkpoints(self, model_id: str, versions: Sequence[int]) -> None:
        """Delete these checkpoints of the model."""
        if not self._muted:
            for version in versions:
                self.store.delete(layout.checkpoint_key(self.run_id, model_id, version))

    def close(self, status: str) -> None:
        """The run ended with ``status``: wait for the queued writes; a failed one fails a completed
        run (else it is logged)."""
        try:
            self.store.close()
        except Exception as err:
            if status == "completed":
                raise
            logger.warning("run %s: a Store write failed as the run ended: %s", self.run_id, err)

    def header(self) -> dict[str, Any]:
        """The settings a resumed run must share with the run it continues."""
        return {
            "seed": self.settings.seed,
            "metric": self.settings.metric,
            "mode": self.settings.mode,
            "deterministic": self.settings.deterministic,
            "fixed_order": self.settings.fixed_order,
            "num_workers": self._backend.num_workers,
            "dataset": {"fingerprint": self._dataset.fingerprint, "root": self._dataset.root},
            "algorithm_config": self._algorithm_config,
        }

    def write(
        self,
        status: str,
        *,
        started: float,
        wall_before: float,
        models: Mapping[str, ModelRecord],
        best_model_id: str | None,
        worker_losses: list[dict[str, Any]],
        workers: Mapping[int, dict[str, Any]] | None = None,
    ) -> None:
        """Write the run record (``search.json``): ``status`` is running, completed, failed or
        interrupted; ``wall_before`` the search time of the sessions before a resume; ``workers`` what
        each worker's set-up reported (pid, TensorFlow, device: ``CPU`` or ``GPU <addresses>``)."""
        header = self.header()
        record = {
            "run_id": self.run_id,
            "status": status,
            **{name: header[name] for name in ("seed", "metric", "mode", "deterministic", "fixed_order")},
            "algorithm": self._search.state(),
            "algorithm_config": header["algorithm_config"],
            "num_workers": header["num_workers"],
            "wall_seconds": wall_before + (time.time() - started if status != "running" else 0.0),
            "dataset": header["dataset"],
            "backend": self._backend.describe(),
            "started_at": started,
            "updated_at": time.time(),
            "best_model_id": best_model_id,
            "worker_losses": worker_losses,
            "workers": [dict(setup) for _, setup in sorted((workers or {}).items())],
            "models": {model_id: model_entry(model) for model_id, model in models.items()},
        }
        self.store.write_json(layout.run_record_key(self.run_id), record)

    def search_result(
        self, models: dict[str, ModelRecord], units: list[UnitRecord], wall_seconds: float, best: str | None
    ) -> SearchResult:
        """A :class:`SearchResult` of these records (the run's settings and workers filled in)."""
        return SearchResult(
            run_id=self.run_id,
            metric=self.settings.metric,
            mode=self.settings.mode,
            num_workers=self._backend.num_workers,
            models=models,
            units=units,
            wall_seconds=wall_seconds,
            best_model_id=best,
        )


def check_not_all_failed(models: Mapping[str, ModelRecord]) -> None:
    """Raise :class:`TrainingError`, listing them, if every model of the search failed."""
    failed = [m for m in models.values() if m.status == ModelStatus.FAILED]
    if models and len(failed) == len(models):
        reasons = "\n".join(
            f"- {m.model_id} {m.params}: {m.error.splitlines()[0] if m.error else ''}" for m in failed
        )
        raise TrainingError(f"Every model of the search failed:\n{reasons}")


def model_entry(model: ModelRecord) -> dict[str, Any]:
    """A model's entry in the run record."""
    return {
        "params": {k: jsonable(v) for k, v in model.params.items()},
        "status": model.status,
        "reason": model.reason,
        "epochs": model.epochs,
        "best_epoch": model.best_epoch,
        "best_version": model.best_version,
        "version": model.version,
    }
