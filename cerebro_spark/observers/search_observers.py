"""The observers of a search that the params ask for: TensorBoard files, MLflow runs, progress display.

``run_search`` creates them before the driver, gives them the driver's live model records, and
closes them when the search ends (with its result) or fails (with ``None``). An observer that fails
to close is logged, never raised: the search's own outcome wins.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cerebro_spark.data.spec import DatasetSpec
from cerebro_spark.driver import DriverCallback, ModelRecord, SearchResult
from cerebro_spark.observers.progress import ProgressCallback, SearchProgress
from cerebro_spark.observers.tensorboard import TensorBoardCallback, tensorboard_available
from cerebro_spark.observers.tracking import MlflowCallback
from cerebro_spark.store.base import Store

logger = logging.getLogger(__name__)


@dataclass
class SearchObservers:
    """The callbacks of one search and what ``run_search`` needs to know about them."""

    callbacks: list[DriverCallback] = field(default_factory=list)
    live_table: bool = False  # a table shows the search: per-epoch log lines would garble or bury it

    @classmethod
    def create(
        cls,
        *,
        tensorboard: bool,
        mlflow_experiment: str | None,
        verbose: int,
        dataset: DatasetSpec,
        store: Store,
        run_id: str,
        metric: str,
        mode: str,
        max_epochs: Callable[[str], int],
        params: Mapping[str, Mapping[str, Any]],
        load_model: Callable[[str, int], Any] | None = None,
    ) -> SearchObservers:
        """The observers that the search's ``tensorboard``, ``mlflow_experiment`` and ``verbose`` params
        ask for. ``max_epochs(model_id)``: the epochs a model may train (the algorithm's); ``params``:
        each model's configuration, filled as models are added; ``load_model(model_id, version)``: a
        trained Keras model, for MLflow."""
        observers = cls()
        if tensorboard:
            observers.callbacks.extend(_tensorboard(store, run_id, params))
        if mlflow_experiment is not None:
            observers.callbacks.append(
                MlflowCallback(run_id, mlflow_experiment, metric, mode, hparams=params, load_model=load_model)
            )
        if verbose >= 1:
            workers = dataset.num_partitions
            units = workers * (2 if dataset.has_validation else 1)
            progress = ProgressCallback(SearchProgress(workers, metric, mode, max_epochs, units))
            observers.callbacks.append(progress)
            observers.live_table = progress.style in ("rich", "notebook")
        return observers

    def bind(self, models: Mapping[str, ModelRecord]) -> None:
        """Give the observers that want them the driver's live model records."""
        for callback in self.callbacks:
            bind = getattr(callback, "bind", None)
            if bind is not None:
                bind(models)

    def close(self, result: SearchResult | None) -> None:
        """Close every observer; log (do not raise) an observer's failure."""
        for callback in self.callbacks:
            close = getattr(callback, "close", None)
            if close is None:
                continue
            try:
                close(result)
            except Exception:  # noqa: BLE001 - the search's result or error matters more
                logger.warning("could not close %s", type(callback).__name__, exc_info=True)


def _tensorboard(store: Store, run_id: str, params: Mapping[str, Mapping[str, Any]]) -> list[DriverCallback]:
    if not tensorboard_available():
        logger.warning(
            "tensorboard=True but the tensorboard package is not installed: no event files are written "
            "(pip install tensorboard, or set tensorboard=False to silence this)."
        )
        return []
    callback = TensorBoardCallback(store, run_id, hparams=params)
    logger.info("TensorBoard: tensorboard --logdir %s", callback.logdir())
    return [callback]
