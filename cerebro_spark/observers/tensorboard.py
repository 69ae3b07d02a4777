"""TensorBoard event files for every model of a search, written as the search goes.

Per model, under ``layout.tensorboard_root(run_id, model_id)`` in the Store (Keras' own layout, so
training and validation curves overlay)::

    .../tensorboard/events.out.tfevents.*             hyperparameters (HParams plugin)
    .../tensorboard/train/events.out.tfevents.*       epoch_<metric>, epoch_train_seconds (step: epoch)
                                                      sub_epoch_seconds, sub_epoch_<timing> (step: unit)
    .../tensorboard/validation/events.out.tfevents.*  epoch_<metric> of the ``val_`` metrics (step: epoch)

``tensorboard --logdir <store>/runs/<run_id>/models`` shows them all. A Store on a local filesystem
gets the files written in place; any other Store gets them written to a temporary folder and
uploaded after every epoch. The events are encoded with the tensorboard package's protobufs and
record writer, without TensorFlow (the ``tensorboard`` package must be installed).
"""

from __future__ import annotations

import logging
import numbers
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from cerebro_spark.driver import DriverCallback, EpochRecord, SearchResult, UnitRecord
from cerebro_spark.errors import MissingDependencyError
from cerebro_spark.search.space import flatten_params
from cerebro_spark.store import layout
from cerebro_spark.store.base import Store

logger = logging.getLogger(__name__)

_INSTALL_HINT = "TensorBoard event files need the tensorboard package: pip install tensorboard"

HParamsSource = Mapping[str, Mapping[str, Any]] | Callable[[str], Mapping[str, Any]]


def tensorboard_available() -> bool:
    """Whether the tensorboard package (used to encode event files) can be imported."""
    try:
        import tensorboard.summary.writer.record_writer  # noqa: F401
    except ImportError:
        return False
    return True


class _EventFile:
    """One event file, appended to by opening it for each batch of events (nothing stays open)."""

    def __init__(self, folder: str) -> None:
        from tensorboard.compat.proto import event_pb2

        os.makedirs(folder, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        self.path = os.path.join(folder, name)
        self.write([event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2")])

    def write(self, events: list[Any]) -> None:
        from tensorboard.summary.writer.record_writer import RecordWriter

        with open(self.path, "ab") as handle:
            writer = RecordWriter(handle)
            for event in events:
                writer.write(event.SerializeToString())
            writer.flush()


class TensorBoardCallback(DriverCallback):
    """A :class:`~cerebro_spark.driver.DriverCallback` that writes each model's TensorBoard files.

    Parameters
    ----------
    store : Store
        The search's Store; files go under ``layout.tensorboard_root(run_id, model_id)``.
    run_id : str
        The search's run id.
    hparams : mapping or callable, optional
        The hyperparameters of each model: a mapping model id -> params (read when the model's first
        epoch ends, so a dict the model factory fills as models are added works) or a function of the
        model id. Values other than bool, int, float and str are written as strings.

    Raises
    ------
    ImportError
        If the tensorboard package is not installed.

    Examples
    --------
    >>> callback = TensorBoardCallback(store, "run-1", hparams={"m0000": {"lr": 0.01}})  # doctest: +SKIP
    >>> MopDriver(backend, store, dataset, search, factory, settings, callbacks=[callback]).run()  # doctest: +SKIP
    >>> callback.close()  # doctest: +SKIP
    """

    def __init__(self, store: Store, run_id: str, hparams: HParamsSource | None = None) -> None:
        if not tensorboard_available():
            raise MissingDependencyError(_INSTALL_HINT)
        self.store = store
        self.run_id = layout.validate_run_id(run_id)
        self._hparams = hparams if hparams is not None else {}
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._files: dict[tuple[str, str], _EventFile] = {}
        self._pending_units: dict[str, list[Any]] = {}
        self._failed = False

    # ---- where files go ------------------------------------------------------------------------

    def _model_folder(self, model_id: str) -> str:
        key = layout.tensorboard_root(self.run_id, model_id)
        local = self.store.local_path(key)
        if local is not None:
            return local
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="cerebro-tensorboard-")
        return os.path.join(self._tmp.name, model_id)

    def _file(self, model_id: str, sub: str) -> _EventFile:
        if (model_id, sub) not in self._files:
            base = self._model_folder(model_id)
            self._files[model_id, sub] = _EventFile(os.path.join(base, sub) if sub else base)
        return self._files[model_id, sub]

    def _upload(self, model_id: str) -> None:
        """Copy a model's event files to the Store when they are not written there in place."""
        key = layout.tensorboard_root(self.run_id, model_id)
        if self.store.local_path(key) is not None:
            return
        for (owner, sub), event_file in self._files.items():
            if owner == model_id:
                name = os.path.basename(event_file.path)
                self.store.upload(event_file.path, f"{key}/{sub}/{name}" if sub else f"{key}/{name}")

    # ---- the hooks -----------------------------------------------------------------------------

    def on_unit_end(self, unit: UnitRecord) -> None:
        """Keep a training unit's time (written with its epoch: one write per epoch, not per unit)."""
        if unit.kind != "train" or self._failed:
            return
        events = self._pending_units.setdefault(unit.model_id, [])
        events.append(
            _scalar_event(
                "sub_epoch_seconds", unit.finished_at - unit.started_at, unit.version, unit.finished_at
            )
        )
        for name, seconds in sorted(unit.timings.items()):
            events.append(_scalar_event(f"sub_epoch_{name}", seconds, unit.version, unit.finished_at))

    def on_epoch_end(self, record: EpochRecord) -> None:
        """Write the epoch's metrics (and, after a model's first epoch, its hyperparameters)."""
        if self._failed:
            return
        try:
            self._write_epoch(record)
            self._upload(record.model_id)
        except OSError as exc:  # a full disk or a lost Store must not end hours of training
            self._failed = True
            logger.warning("TensorBoard files of run %s are no longer written: %s", self.run_id, exc)

    def _write_epoch(self, record: EpochRecord) -> None:
        model_id, step, when = record.model_id, record.epoch, record.finished_at
        train = [
            _scalar_event(f"epoch_{k}", v, step, when)
            for k, v in sorted(record.metrics.items())
            if not k.startswith("val_")
        ]
        train.append(_scalar_event("epoch_train_seconds", record.train_seconds, step, when))
        train.extend(self._pending_units.pop(model_id, []))
        validation = [
            _scalar_event(f"epoch_{k[4:]}", v, step, when)
            for k, v in sorted(record.metrics.items())
            if k.startswith("val_")
        ]
        if (model_id, "") not in self._files:
            self._file(model_id, "").write([_hparams_event(model_id, self._params_of(model_id), when)])
        self._file(model_id, "train").write(train)
        if validation:
            self._file(model_id, "validation").write(validation)

    def _params_of(self, model_id: str) -> dict[str, Any]:
        source = self._hparams
        params = source(model_id) if callable(source) else source.get(model_id, {})
        return {k: _hparam_value(v) for k, v in flatten_params(dict(params)).items()}

    def close(self, result: SearchResult | None = None) -> None:
        """Upload what is left and remove the temporary folder (non-local Stores). Idempotent."""
        if self._tmp is not None:
            if not self._failed:
                for model_id in {owner for owner, _ in self._files}:
                    self._upload(model_id)
            self._tmp.cleanup()
            self._tmp = None
        self._files.clear()

    def logdir(self) -> str:
        """The folder to give ``tensorboard --logdir`` (the run's models folder), as a Store URL."""
        return f"{self.store.url.rstrip('/')}/{layout.run_root(self.run_id)}/models"


def _scalar_event(tag: str, value: float, step: int, wall_time: float) -> Any:
    """A scalar as a ``simple_value`` summary: what every TensorBoard reader understands."""
    from tensorboard.compat.proto import event_pb2, summary_pb2

    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=float(value))])
    return event_pb2.Event(wall_time=wall_time, step=int(step), summary=summary)


def _hparams_event(model_id: str, params: dict[str, Any], wall_time: float) -> Any:
    from tensorboard.compat.proto import event_pb2
    from tensorboard.plugins.hparams import summary_v2

    summary = summary_v2.hparams_pb(params, trial_id=model_id, start_time_secs=wall_time)
    return event_pb2.Event(wall_time=wall_time, step=0, summary=summary)


def _hparam_value(value: Any) -> bool | int | float | str:
    """A value the HParams plugin accepts: bool, int, float or str (anything else as its str)."""
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return str(value)
