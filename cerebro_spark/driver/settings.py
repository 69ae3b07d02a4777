"""What a search runs with: the worker tasks, the run's settings and the driver's callbacks."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from cerebro_spark.driver.records import EpochRecord, UnitRecord
from cerebro_spark.errors import InvalidParamError

#: Models the user adds to a running search are named ``u0000``, ``u0001``... (the algorithms' are ``m...``).
USER_MODEL_PREFIX = "u"


@dataclass(frozen=True, slots=True)
class TaskNames:
    """Dotted paths of the worker tasks (tests swap in fakes that need no TensorFlow)."""

    setup: str = "cerebro_spark.training.trainer:setup_worker"
    train: str = "cerebro_spark.training.trainer:train_sub_epoch"
    evaluate: str = "cerebro_spark.training.trainer:evaluate"


@dataclass(frozen=True, slots=True)
class RunSettings:
    """How one search runs. ``metric`` is a history name such as ``val_loss``; ``mode`` min or max."""

    run_id: str
    metric: str
    mode: str
    seed: int
    deterministic: bool = False
    #: The Keras backend the workers run ("tensorflow", "jax"...): the driver's. None: the workers' own.
    keras_backend: str | None = None
    fixed_order: bool = True
    result_timeout_s: float = 24 * 3600.0  # units may take hours on big partitions
    #: A unit running longer than this is taken for hung (its worker still beats, but the unit never
    #: ends) and its workers are relaunched. None: :func:`unit_deadline` from the units seen so far;
    #: the environment variable ``CEREBRO_UNIT_TIMEOUT_S`` sets it for every search of a process.
    unit_timeout_s: float | None = field(default_factory=lambda: _env_seconds("CEREBRO_UNIT_TIMEOUT_S"))


#: Without ``unit_timeout_s``: a unit may take this many times the longest unit seen so far ...
UNIT_TIMEOUT_FACTOR = 10.0
#: ... and never less than this (the first units also load data and build models).
MIN_UNIT_TIMEOUT_S = 600.0


def unit_deadline(settings: RunSettings, longest_unit_s: float) -> float:
    """Seconds a unit may run before it is taken for hung (see :attr:`RunSettings.unit_timeout_s`)."""
    if settings.unit_timeout_s is not None:
        return settings.unit_timeout_s
    return max(MIN_UNIT_TIMEOUT_S, UNIT_TIMEOUT_FACTOR * longest_unit_s)


def _env_seconds(name: str) -> float | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise InvalidParamError(f"{name} must be a number of seconds. Received: {value!r}.") from None
    if not seconds > 0:
        raise InvalidParamError(f"{name} must be a number of seconds > 0. Received: {value!r}.")
    return seconds


class DriverCallback:
    """Hooks called on the driver as the search goes (progress displays, TensorBoard, tests)."""

    def on_unit_end(self, unit: UnitRecord) -> None:
        """A unit completed."""

    def on_epoch_end(self, record: EpochRecord) -> None:
        """A model finished an epoch (training and validation)."""
