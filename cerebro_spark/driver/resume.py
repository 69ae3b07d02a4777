"""Resume a run from what it left in the Store.

A run's files say everything a search needs to continue:

- ``search.json``, the run record: seed, metric, dataset fingerprint, the algorithm's settings;
- ``journal.jsonl``: every completed unit, in completion order (the source of truth);
- ``events.jsonl``: what else changed the search between units (a model failed, a user command),
  each with the number of journal units before it;
- each model's ``history.jsonl`` and its checkpoints (the latest and the best are always kept).

The driver resumes by *replaying*: a fresh search algorithm (same seed) and a fresh scheduler
see the journal's units and the events in their original order, so they end in the state they
had when the run stopped, and every decision (stop, pause, new trials) is made again, the same
way. No unit is run during replay; the first unit run afterwards is the first one the journal
lacks. Units of an epoch that had not closed are kept (they have checkpoints). A journal or
history line torn by a crash mid-write is dropped.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from cerebro_spark.driver.records import EpochRecord, UnitRecord
from cerebro_spark.errors import InvalidParamError
from cerebro_spark.store import layout
from cerebro_spark.store.base import Store

logger = logging.getLogger(__name__)

#: Run record fields that must be equal for a run to be resumed (the algorithm's settings aside).
CHECKED_FIELDS = ("seed", "metric", "mode", "deterministic", "fixed_order", "num_workers")


def events_key(run_id: str) -> str:
    """The run's log of events between units: ``runs/<run_id>/events.jsonl``."""
    return f"{layout.run_root(run_id)}/events.jsonl"


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


def append_event(store: Store, run_id: str, event: dict[str, Any]) -> None:
    """Append one event line (it carries ``at_unit``: how many journal units came before it)."""
    store.append_text(events_key(run_id), json.dumps(event) + "\n")


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
    old, new = record["algorithm_config"], _json_round_trip(header["algorithm_config"])
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


class MutedStore:
    """A Store that reads through and drops every write: what the driver writes to while replaying."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        if name in ("append_text", "write_text", "write_json", "write_bytes", "delete", "upload"):
            return lambda *args, **kwargs: None
        return getattr(self._store, name)


@contextlib.contextmanager
def replaying(driver: Any) -> Iterator[None]:
    """While the block runs, ``driver`` writes nothing to its Store and calls no callback."""
    store, callbacks = driver.store, driver.callbacks
    driver.store, driver.callbacks = MutedStore(store), []
    try:
        yield
    finally:
        driver.store, driver.callbacks = store, callbacks


def _json_round_trip(value: Any) -> Any:
    return json.loads(json.dumps(value, default=repr))
