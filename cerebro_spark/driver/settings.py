"""What a search runs with: the worker tasks, the run's settings and the driver's callbacks."""

from __future__ import annotations

from dataclasses import dataclass

from cerebro_spark.driver.records import EpochRecord, UnitRecord

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
    fixed_order: bool = True
    result_timeout_s: float = 24 * 3600.0  # units may take hours on big partitions


class DriverCallback:
    """Hooks called on the driver as the search goes (progress displays, TensorBoard, tests)."""

    def on_unit_end(self, unit: UnitRecord) -> None:
        """A unit completed."""

    def on_epoch_end(self, record: EpochRecord) -> None:
        """A model finished an epoch (training and validation)."""
