"""MLflow tracking of a search: one parent run per search, one nested run per model.

The parent run (named after the search's run id) holds the search's settings and, at the end, the
best model's id and metrics. Each model gets a nested run (``mlflow.parentRunId``) with its
hyperparameters as params and every epoch's metrics (step = epoch), ended FINISHED, KILLED (stopped
early) or FAILED. Everything goes through an explicit ``MlflowClient``: no global active run is
touched, so a user's own ``mlflow.start_run()`` around ``fit`` is left alone. MLflow is the optional
``mlflow`` extra and is imported only here.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from cerebro_spark.driver import DriverCallback, EpochRecord, ModelRecord, SearchResult
from cerebro_spark.errors import MissingDependencyError
from cerebro_spark.observers.tensorboard import HParamsSource
from cerebro_spark.search.space import flatten_params

logger = logging.getLogger(__name__)

_INSTALL_HINT = "MLflow tracking needs mlflow: pip install 'cerebro-spark[mlflow]'."
_END_STATUS = {"completed": "FINISHED", "stopped": "KILLED", "failed": "FAILED"}


class MlflowCallback(DriverCallback):
    """A :class:`~cerebro_spark.driver.DriverCallback` that records a search in MLflow.

    Parameters
    ----------
    run_id : str
        The search's run id (the parent run's name and its ``cerebro.run_id`` tag).
    experiment : str
        The MLflow experiment's name; created if missing.
    metric, mode : str
        The evaluation metric and its direction (tags of the parent run).
    hparams : mapping or callable, optional
        Each model's hyperparameters, as for :class:`~cerebro_spark.observers.tensorboard.TensorBoardCallback`.
    tracking_uri : str, optional
        Default: MLflow's own (``MLFLOW_TRACKING_URI`` or ``mlflow.set_tracking_uri``).

    Raises
    ------
    ImportError
        If mlflow is not installed.

    Examples
    --------
    >>> callback = MlflowCallback("run-1", "my-search", "val_loss", "min",  # doctest: +SKIP
    ...                           tracking_uri="sqlite:///mlflow.db")
    """

    def __init__(
        self,
        run_id: str,
        experiment: str,
        metric: str,
        mode: str,
        *,
        hparams: HParamsSource | None = None,
        tracking_uri: str | None = None,
        load_model: Callable[[str, int], Any] | None = None,
    ) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError as exc:
            raise MissingDependencyError(_INSTALL_HINT) from exc
        self.client = MlflowClient(tracking_uri=tracking_uri)
        found = self.client.get_experiment_by_name(experiment)
        self.experiment_id = (
            found.experiment_id if found is not None else self.client.create_experiment(experiment)
        )
        self.run_id, self.metric, self.mode = run_id, metric, mode
        self._hparams = hparams if hparams is not None else {}
        self._models: Mapping[str, ModelRecord] = {}
        self._children: dict[str, str] = {}
        tags = {"cerebro.run_id": run_id, "cerebro.metric": metric, "cerebro.mode": mode}
        self.parent_run_id: str = self.client.create_run(
            self.experiment_id, run_name=run_id, tags=tags
        ).info.run_id
        self._closed = False
        self._load_model = load_model  # (model id, checkpoint version) -> keras.Model

    def bind(self, models: Mapping[str, ModelRecord]) -> None:
        """Give the callback the driver's live model records (to end each run with its status)."""
        self._models = models

    def _child(self, model_id: str) -> str:
        if model_id not in self._children:
            from mlflow.entities import Param

            tags = {
                "mlflow.parentRunId": self.parent_run_id,
                "cerebro.run_id": self.run_id,
                "cerebro.model_id": model_id,
            }
            run = self.client.create_run(self.experiment_id, run_name=model_id, tags=tags)
            source = self._hparams
            params = source(model_id) if callable(source) else source.get(model_id, {})
            flat = flatten_params(dict(params))
            self.client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in flat.items()])
            self._children[model_id] = run.info.run_id
        return self._children[model_id]

    def on_epoch_end(self, record: EpochRecord) -> None:
        """Log the epoch's metrics (and its training seconds) to the model's run, step = epoch."""
        from mlflow.entities import Metric

        stamp = int(record.finished_at * 1000)
        values = {**record.metrics, "train_seconds": record.train_seconds}
        metrics = [
            Metric(name, float(v), stamp, record.epoch)
            for name, v in sorted(values.items())
            if math.isfinite(v)
        ]
        try:
            self.client.log_batch(self._child(record.model_id), metrics=metrics)
        except Exception as exc:  # noqa: BLE001 - a tracking server's hiccup must not end the search
            logger.warning(
                "MLflow: could not log epoch %d of model %s: %s", record.epoch, record.model_id, exc
            )

    def close(self, result: SearchResult | None = None) -> None:
        """End every model's run with its status and the parent run (FAILED without a ``result``)."""
        if self._closed:
            return
        self._closed = True
        models = result.models if result is not None else self._models
        for model_id, run in self._children.items():
            record = models.get(model_id)
            if record is not None and record.best_epoch is not None:
                self.client.set_tag(run, "cerebro.best_epoch", str(record.best_epoch))
            status = _END_STATUS.get(record.status if record is not None else "", "FAILED")
            self.client.set_terminated(run, status=status)
        if result is not None and result.best_model_id is not None:
            from mlflow.entities import Metric

            best = result.models[result.best_model_id]
            self.client.set_tag(self.parent_run_id, "cerebro.best_model_id", result.best_model_id)
            metrics = [Metric(f"best_{k}", float(v), 0, 0) for k, v in sorted(best.best_metrics().items())]
            metrics.append(Metric("wall_seconds", result.wall_seconds, 0, 0))
            metrics.append(Metric("utilization", result.utilization(), 0, 0))
            self.client.log_batch(self.parent_run_id, metrics=metrics)
            self._log_best_model(result.best_model_id, best.best_version)
        self.client.set_terminated(self.parent_run_id, status="FINISHED" if result is not None else "FAILED")

    def _log_best_model(self, model_id: str, version: int | None) -> None:
        """The best model, at its best epoch, as an MLflow Keras model under the parent run's
        ``best_model`` artifact (``mlflow.keras.load_model("runs:/<parent>/best_model")``)."""
        if self._load_model is None or version is None:
            return
        try:
            import mlflow.keras

            model = self._load_model(model_id, version)
            with tempfile.TemporaryDirectory(prefix="cerebro-mlflow-") as tmp, warnings.catch_warnings():
                warnings.simplefilter("ignore")  # MLflow's advice about signatures and type hints
                path = os.path.join(tmp, "best_model")
                mlflow.keras.save_model(model, path)
                self.client.log_artifacts(self.parent_run_id, path, artifact_path="best_model")
        except Exception as exc:  # noqa: BLE001 - the search's result matters more than this copy
            logger.warning("MLflow: could not log the best model %s: %s", model_id, exc)
