"""Resume a run from what it left in the Store.

A run's files say everything a search needs to continue:

- ``search.json``, the run record: seed, metric, dataset fingerprint, the algorithm's settings;
- ``journal.jsonl``: every completed unit, in completion order (the source of truth);
- ``events.jsonl``: what else changed the search between units (a model failed, a user command),
  each with the number of journal units before it;
- each model's ``history.jsonl`` and its checkpoints (the latest and the best are always kept).

The driver resumes by *replaying* (:func:`restore`): a fresh search algorithm (same seed) and a
fresh scheduler see the journal's units and the events in their original order, so they end in
the state they had when the run stopped, and every decision (stop, pause, new trials) is made
again, the same way. No unit is run and nothing is written during replay (the driver's
:class:`~cerebro_spark.driver.run_record.RunRecorder` is muted); the first unit run afterwards is
the first one the journal lacks. Units of an epoch that had not closed are kept (they have
checkpoints). A journal or history line torn by a crash mid-write is dropped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cerebro_spark._json import jsonable, read_back
from cerebro_spark.backend.base import TaskResult
from cerebro_spark.driver.book import ModelBook
from cerebro_spark.driver.commands import LiveCommands
from cerebro_spark.driver.control import command_from_dict
from cerebro_spark.driver.records import EpochRecord, ModelRecord, UnitRecord
from cerebro_spark.driver.run_record import RunRecorder, events_key
from cerebro_spark.errors import InvalidParamError
from cerebro_spark.scheduler import Assignment, Unit, UnitKind
from cerebro_spark.store import layout
from cerebro_spark.store.base import Store

logger = logging.getLogger(__name__)

#: Run record fields that must be equal for a run to be resumed (the algorithm's settings aside).
CHECKED_FIELDS = ("seed", "metric", "mode", "deterministic", "fixed_order", "num_workers")


@dataclass
class RunLog:
    """What a stopped run left in the Store."""

    run_id: str
    record: dict[str, Any]
    units: list[UnitRecord]
    events: list[dict[str, Any]]
    histories: dict[str, list[EpochRecord]] = field(default_factory=dict)

    def events_at(self) -> dict[int, list[dict[str, Any]]]:
        """Events by the number of journal units that preceded them."""
        by_position: dict[int, list[dict[str, Any]]] = {}
        for event in self.events:
            by_position.setdefault(int(event["at_unit"]), []).append(event)
        return by_position


def load_run(store: Store, run_id: str) -> RunLog | None:
    """Read run ``run_id`` from ``store``; None if the Store has no run of that id.

    Torn last lines (a crash during an append) are dropped from the files, so that later appends
    start on a line of their own.
    """
    if not store.exists(layout.run_record_key(run_id)):
        return None
    record = store.read_json(layout.run_record_key(run_id))
    units = [UnitRecord(**line) for line in read_jsonl(store, layout.journal_key(run_id))]
    events = read_jsonl(store, events_key(run_id))
    histories = {
        model_id: [EpochRecord(**line) for line in read_jsonl(store, layout.history_key(run_id, model_id))]
        for model_id in record.get("models", {})
    }
    logger.info("run %s: %d units and %d events in the Store", run_id, len(units), len(events))
    return RunLog(run_id, record, units, events, histories)


def read_jsonl(store: Store, key: str) -> list[dict[str, Any]]:
    """The JSON lines of ``key`` ([] if missing); a torn last line is dropped and the file repaired."""
    try:
        text = store.read_text(key)
    except FileNotFoundError:
        return []
    lines = text.splitlines()
    rows: list[dict[str, Any]] = []
    for i, line in enumerate(lines):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i != len(lines) - 1:
                raise InvalidParamError(
                    f"Line {i + 1} of {key!r} in Store {store.url!r} is not JSON, and it is not the last "
                    "line (a crash can only tear the last one): the run's files were edited. "
                    f"Received: {line[:80]!r}"
                ) from None
            logger.warning("dropping a torn last line of %s: %r", key, line[:80])
            store.write_text(key, "".join(f"{kept}\n" for kept in lines[:i]))
            return rows
    if text and not text.endswith("\n"):  # a complete last line without its newline
        store.append_text(key, "\n")
    return rows


def check_resumable(log: RunLog, header: dict[str, Any]) -> None:
    """Raise :class:`InvalidParamError` unless ``header`` (the new run's settings) matches the record.

    Compares :data:`CHECKED_FIELDS`, the prepared data's fingerprint and the search algorithm's
    settings (``algorithm_config``, its state before any epoch: space, epochs, seed...).
    """
    record, problems = log.record, []
    if "algorithm_config" not in record:
        raise InvalidParamError(
            f"The run_id {log.run_id!r} names a run in the Store that cannot be resumed: its record has no "
            "algorithm settings (it was written by an older cerebro_spark). Pass a new run_id."
        )
    for name in CHECKED_FIELDS:
        if name in record and record[name] != header.get(name):
            problems.append(f"{name}: the run has {record[name]!r}, this search {header.get(name)!r}")
    recorded_data = record.get("dataset", {}).get("fingerprint")
    if recorded_data != header["dataset"]["fingerprint"]:
        problems.append(
            f"prepared data: the run used fingerprint {recorded_data!r}, this search "
            f"{header['dataset']['fingerprint']!r} (other data, columns, validation or split seed)"
        )
    old, new = record["algorithm_config"], read_back(header["algorithm_config"])
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            problems.append(f"search {key}: the run has {old.get(key)!r}, this search {new.get(key)!r}")
    if problems:
        raise InvalidParamError(
            f"The run_id {log.run_id!r} names a run in the Store that was started with other settings, "
            "so it cannot be resumed:\n- " + "\n- ".join(problems) + "\nResume it with the same settings, "
            "or pass a new run_id to start a new search."
        )


def check_params(log: RunLog, model_id: str, params: dict[str, Any]) -> None:
    """The replayed model ``model_id`` must have the configuration the run recorded for it
    (``params`` as the run record writes them)."""
    recorded = log.record.get("models", {}).get(model_id)
    if recorded is not None and recorded.get("params") != params:
        raise InvalidParamError(
            f"The run_id {log.run_id!r} names a run whose model {model_id!r} had the configuration "
            f"{recorded.get('params')!r}, but this search gives it {params!r}. Resume it with the same "
            "search, or pass a new run_id."
        )


def mismatch(log: RunLog, what: str) -> InvalidParamError:
    """The error for a journal that the replayed search does not reproduce."""
    return InvalidParamError(
        f"The run_id {log.run_id!r} names a run whose journal this search does not reproduce: {what}. "
        "The search (its algorithm, space, seed or model builder) differs from the run's, or the "
        "algorithm is not deterministic. Pass a new run_id to start a new search."
    )


def restore(
    log: RunLog,
    book: ModelBook,
    recorder: RunRecorder,
    commands: LiveCommands,
    track: Callable[[Assignment, float], int],
    on_result: Callable[[TaskResult], None],
) -> float:
    """Replay the run's journal and events: the scheduler, the search algorithm and the records end
    in the state the run had when it stopped; nothing runs, and nothing is written meanwhile
    (``recorder`` is muted). Then the stored histories are completed.

    Each journal unit is assigned as the scheduler would, counted in flight by
    ``track(assignment, submitted_at)`` (which returns its task id), and its recorded result is
    handed to ``on_result``, as the driver takes a result. Returns the search time of the sessions
    before this one.
    """
    check_resumable(log, recorder.header())
    events = log.events_at()
    with recorder.muted():
        for position, unit in enumerate(log.units):
            for event in events.pop(position, []):
                _replay_event(log, book, commands, event)
            _replay_unit(log, book, recorder, track, on_result, unit)
        for event in events.pop(len(log.units), []):
            _replay_event(log, book, commands, event)
    if events:
        raise mismatch(log, f"events after the end of the journal: {events}")
    for model_id, model in book.models.items():
        check_params(log, model_id, {k: jsonable(v) for k, v in model.params.items()})
        _restore_history(log, recorder, model)
    logger.info(
        "run %s resumed: %d units and %d events replayed; %d models active",
        log.run_id,
        len(log.units),
        len(log.events),
        len(book.scheduler.active_models),
    )
    return float(log.record.get("wall_seconds", 0.0))


def _replay_unit(
    log: RunLog,
    book: ModelBook,
    recorder: RunRecorder,
    track: Callable[[Assignment, float], int],
    on_result: Callable[[TaskResult], None],
    record: UnitRecord,
) -> None:
    """Hand out the journal's unit as the scheduler would, and take its recorded result."""
    unit = Unit(record.model_id, record.epoch, record.partition, UnitKind(record.kind))
    if record.model_id not in book.models or unit not in book.scheduler.runnable_units(record.partition):
        raise mismatch(log, f"its unit {unit} is not runnable after {len(recorder.units)} units")
    task_id = track(book.scheduler.assign(record.partition, unit), record.submitted_at)
    value = {
        "version": record.version,
        "metrics": record.metrics,
        "rows": record.rows,
        "timings": record.timings,
    }
    on_result(
        TaskResult(
            task_id=task_id,
            worker_id=record.worker_id,
            ok=True,
            value=value,
            started_at=record.started_at,
            finished_at=record.finished_at,
        )
    )
    recorder.units[-1] = record  # with its original times


def _replay_event(log: RunLog, book: ModelBook, commands: LiveCommands, event: dict[str, Any]) -> None:
    model_id = event.get("model_id", "")
    if event["event"] == "failed":
        if model_id not in book.scheduler.active_models:
            raise mismatch(log, f"model {model_id!r} failed but it is not active")
        book.models[model_id].error = event["error"]
        book.fail(model_id, event["reason"])
    elif event["event"] == "command":
        commands.apply(command_from_dict(event["command"]))
    else:
        raise mismatch(log, f"unknown event {event!r}")


def _restore_history(log: RunLog, recorder: RunRecorder, model: ModelRecord) -> None:
    """Keep the stored history lines (their times); append the epochs a crash kept out of it."""
    stored = [
        EpochRecord(**line)
        for line in read_jsonl(recorder.store, layout.history_key(log.run_id, model.model_id))
    ]
    if [r.epoch for r in stored] != [r.epoch for r in model.history[: len(stored)]]:
        raise mismatch(log, f"model {model.model_id!r} has epochs {[r.epoch for r in stored]} in its history")
    model.history[: len(stored)] = stored
    for record in model.history[len(stored) :]:
        recorder.history(record)
