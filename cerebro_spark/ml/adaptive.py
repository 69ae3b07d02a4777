"""Adaptive model selection as ``pyspark.ml`` Estimators: successive halving, Hyperband, ASHA, TPE.

Each wraps a pure algorithm of :mod:`cerebro_spark.search`; models stopped early free their
workers for the others at once (Model Hopper Parallelism), and the result keeps every model's
history, status and the reason it stopped.
"""

from __future__ import annotations

import secrets
from typing import Any

from cerebro_spark.errors import InvalidParamError
from cerebro_spark.ml._fit import resolve_backend
from cerebro_spark.ml._params import param, validate_params
from cerebro_spark.ml.tune import _ModelSelection
from cerebro_spark.search import (
    ASHAAlgorithm,
    HyperbandAlgorithm,
    SearchAlgorithm,
    SuccessiveHalvingAlgorithm,
    TPEAlgorithm,
    resolve_mode,
)


class _AdaptiveSelection(_ModelSelection):
    """What the adaptive searches share: their Params' checks, the seed and the concurrency."""

    #: Params inherited from the shared data params that these searches ignore: rung-based searches
    #: train up to ``max_epochs`` (TPESearch, which uses ``num_epochs``, clears this).
    _unused_params = ("num_epochs",)

    def _get(self, name: str) -> Any:
        """The value of Param ``name``, checked against its constraint."""
        validate_params(self, [name])
        return self.getOrDefault(name)

    def _epochs(self) -> tuple[int, int]:
        low, high = self._get("min_epochs"), self._get("max_epochs")
        if low > high:
            raise InvalidParamError(
                f"The 'min_epochs' param of {type(self).__name__} must be <= max_epochs ({high}). "
                f"Received: {low!r}."
            )
        return int(low), int(high)

    def _common(self, seed: int | None) -> dict[str, Any]:
        """The run's seed (default: the seed param, or a fresh one), the metric and the resolved mode."""
        if seed is None:
            seed = self.getSeed()
        metric = self.getOrDefault(self.evaluation_metric)
        return {
            "seed": secrets.randbelow(2**31) if seed is None else seed,
            "metric": metric,
            "mode": resolve_mode(metric, self.getOrDefault(self.mode)),
        }

    def _max_concurrent(self) -> int:
        """The ``max_concurrent`` Param, or twice the backend's number of workers."""
        value = self._get("max_concurrent")
        return 2 * resolve_backend(self).num_workers if value is None else int(value)


class SuccessiveHalvingSearch(_AdaptiveSelection):
    """Successive halving: ``num_models`` configurations; at each rung (epochs ``min_epochs * eta**k``)
    every model waits for the others, then the best ``1/eta`` go on and the rest stop.

    Parameters
    ----------
    num_models : int, default 27
        Configurations sampled from the search space with the seed.
    min_epochs, max_epochs : int, default 1 and 9
        First rung and the epochs of a model never stopped.
    reduction_factor : int, default 3
        ``eta`` (>= 2).
    estimator_gen_fn, search_space, evaluation_metric, mode, feature_columns, label_columns, store
        As for :class:`~cerebro_spark.ml.tune.GridSearch`.
    backend, validation, seed, verbose, run_id, tensorboard, mlflow_experiment, sample_weight_column
        As for :class:`~cerebro_spark.ml.tune.GridSearch`.
    reader, prediction_col, probability_col, raw_prediction_col, output_type, task, inference_batch_size
        As for :class:`~cerebro_spark.ml.tune.GridSearch` (the prediction params go to the fitted models).
    """

    _defaults = {"num_models": 27}

    min_epochs = param("min_epochs")
    max_epochs = param("max_epochs")
    reduction_factor = param("reduction_factor")
    num_models = param("num_models")

    def _algorithm(self, seed: int | None = None) -> SearchAlgorithm:
        low, high = self._epochs()
        return SuccessiveHalvingAlgorithm(
            self._space(),
            num_models=self.getOrDefault(self.num_models),
            min_epochs=low,
            max_epochs=high,
            reduction_factor=self._get("reduction_factor"),
            **self._common(seed),
        )


class HyperbandSearch(_AdaptiveSelection):
    """Hyperband: brackets of successive halving, all started at once so that workers stay busy.

    Parameters
    ----------
    max_epochs : int, default 9
        Epochs of a model that is never stopped.
    min_epochs : int, default 1
        First rung of the most aggressive bracket.
    reduction_factor : int, default 3
        ``eta`` (>= 2); the number of configurations follows from it and the epochs.
    estimator_gen_fn, search_space, evaluation_metric, mode, feature_columns, label_columns, store
        As for :class:`~cerebro_spark.ml.tune.GridSearch`.
    backend, validation, seed, verbose, run_id, tensorboard, mlflow_experiment, sample_weight_column
        As for :class:`~cerebro_spark.ml.tune.GridSearch`.
    reader, prediction_col, probability_col, raw_prediction_col, output_type, task, inference_batch_size
        As for :class:`~cerebro_spark.ml.tune.GridSearch` (the prediction params go to the fitted models).
    """

    min_epochs = param("min_epochs")
    max_epochs = param("max_epochs")
    reduction_factor = param("reduction_factor")

    def _algorithm(self, seed: int | None = None) -> SearchAlgorithm:
        low, high = self._epochs()
        return HyperbandAlgorithm(
            self._space(),
            min_epochs=low,
            max_epochs=high,
            reduction_factor=self._get("reduction_factor"),
            **self._common(seed),
        )


class ASHASearch(_AdaptiveSelection):
    """ASHA: asynchronous successive halving; no rung waits for the others, freed workers take new
    configurations until ``num_models`` were tried.

    Parameters
    ----------
    num_models : int, default 27
        Budget of configurations, sampled from the search space with the seed.
    min_epochs, max_epochs : int, default 1 and 9
        First rung and the epochs of a model never stopped.
    reduction_factor : int, default 3
        ``eta`` (>= 2).
    max_concurrent : int or None, default None
        Models training at once; None: twice the number of workers.
    estimator_gen_fn, search_space, evaluation_metric, mode, feature_columns, label_columns, store
        As for :class:`~cerebro_spark.ml.tune.GridSearch`.
    backend, validation, seed, verbose, run_id, tensorboard, mlflow_experiment, sample_weight_column
        As for :class:`~cerebro_spark.ml.tune.GridSearch`.
    reader, prediction_col, probability_col, raw_prediction_col, output_type, task, inference_batch_size
        As for :class:`~cerebro_spark.ml.tune.GridSearch` (the prediction params go to the fitted models).

    Examples
    --------
    >>> search = ASHASearch(backend=backend, store=store, estimator_gen_fn=estimator_gen_fn,  # doctest: +SKIP
    ...                     search_space={"lr": hp_loguniform(1e-4, 1e-1)}, num_models=32, max_epochs=9,
    ...                     feature_columns=["features"], label_columns=["label"], validation=0.2, seed=7)
    >>> result = search.fit(train_df)  # doctest: +SKIP
    """

    _defaults = {"num_models": 27}

    min_epochs = param("min_epochs")
    max_epochs = param("max_epochs")
    reduction_factor = param("reduction_factor")
    num_models = param("num_models")
    max_concurrent = param("max_concurrent")

    def _algorithm(self, seed: int | None = None) -> SearchAlgorithm:
        low, high = self._epochs()
        return ASHAAlgorithm(
            self._space(),
            num_models=self.getOrDefault(self.num_models),
            min_epochs=low,
            max_epochs=high,
            reduction_factor=self._get("reduction_factor"),
            max_concurrent=self._max_concurrent(),
            **self._common(seed),
        )


class TPESearch(_AdaptiveSelection):
    """Bayesian search with Optuna's TPE: a new configuration is proposed from the results so far each
    time a model finishes, so workers stay busy. Needs ``pip install 'cerebro_spark[tune]'``.

    Parameters
    ----------
    num_models : int, default 20
        Configurations to propose in all.
    num_epochs : int, default 1
        Epochs per model.
    max_concurrent : int or None, default None
        Models training at once; None: twice the number of workers.
    estimator_gen_fn, search_space, evaluation_metric, mode, feature_columns, label_columns, store
        As for :class:`~cerebro_spark.ml.tune.GridSearch`.
    backend, validation, seed, verbose, run_id, tensorboard, mlflow_experiment, sample_weight_column
        As for :class:`~cerebro_spark.ml.tune.GridSearch`.
    reader, prediction_col, probability_col, raw_prediction_col, output_type, task, inference_batch_size
        As for :class:`~cerebro_spark.ml.tune.GridSearch` (the prediction params go to the fitted models).
    """

    _unused_params = ()
    _defaults = {"num_models": 20}

    num_models = param("num_models")
    max_concurrent = param("max_concurrent")

    def _algorithm(self, seed: int | None = None) -> SearchAlgorithm:
        return TPEAlgorithm(
            self._space(),
            num_models=self.getOrDefault(self.num_models),
            num_epochs=self.getNumEpochs(),
            max_concurrent=self._max_concurrent(),
            **self._common(seed),
        )


__all__ = ["ASHASearch", "HyperbandSearch", "SuccessiveHalvingSearch", "TPESearch"]
