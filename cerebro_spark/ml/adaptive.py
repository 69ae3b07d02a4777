"""Adaptive model selection as ``pyspark.ml`` Estimators: successive halving, Hyperband, ASHA, TPE.

Each wraps a pure algorithm of :mod:`cerebro_spark.search`; models stopped early free their
workers for the others at once (Model Hopper Parallelism), and the result keeps every model's
history, status and the reason it stopped.
"""

from __future__ import annotations

import numbers
import secrets
from typing import TYPE_CHECKING, Any

from pyspark import keyword_only
from pyspark.ml.param import Param, TypeConverters

from cerebro_spark.errors import InvalidParamError
from cerebro_spark.ml._fit import resolve_backend
from cerebro_spark.ml._params import PredictionKwargs, _param, takes_prediction_params
from cerebro_spark.ml.tune import _ModelSelection
from cerebro_spark.search import (
    ASHAAlgorithm,
    HyperbandAlgorithm,
    SearchAlgorithm,
    SuccessiveHalvingAlgorithm,
    TPEAlgorithm,
    resolve_mode,
)

if TYPE_CHECKING:
    from typing import Unpack  # Python >= 3.11; annotations only


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


class _AdaptiveSelection(_ModelSelection):
    """What the adaptive searches share: their Params' checks, the seed and the concurrency."""

    #: Params inherited from the shared data params that these searches ignore: rung-based searches
    #: train up to ``max_epochs`` (TPESearch, which uses ``num_epochs``, clears this).
    _unused_params: tuple[str, ...] = ("num_epochs",)

    #: name -> (check, what is expected): the algorithm Params each subclass has
    _checks: dict[str, tuple[Any, str]] = {
        "min_epochs": (lambda v: _is_int(v) and v >= 1, "an int >= 1"),
        "max_epochs": (lambda v: _is_int(v) and v >= 1, "an int >= 1"),
        "reduction_factor": (lambda v: _is_int(v) and v >= 2, "an int >= 2"),
        "max_concurrent": (lambda v: v is None or _is_int(v) and v >= 1, "an int >= 1 or None"),
    }

    def _get(self, name: str) -> Any:
        """The value of Param ``name``, checked against its constraint."""
        value = self.getOrDefault(self.getParam(name))
        check, expected = self._checks.get(name, (lambda v: True, ""))
        if not check(value):
            raise InvalidParamError(
                f"The {name!r} param of {type(self).__name__} must be {expected}. Received: {value!r}."
            )
        return value

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


min_epochs_param: Param[int] = _param(
    "min_epochs", "epoch of the first rung, where models are first compared (>= 1).", TypeConverters.toInt
)
max_epochs_param: Param[int] = _param(
    "max_epochs", "epochs of a model that is never stopped (>= min_epochs).", TypeConverters.toInt
)
reduction_factor_param: Param[int] = _param(
    "reduction_factor", "eta: a rung keeps the best 1/eta of its models (>= 2).", TypeConverters.toInt
)
max_concurrent_param: Param[int] = _param(
    "max_concurrent", "models training at once (>= 1); None: twice the number of workers."
)
num_models_param: Param[int] = _param(
    "num_models", "number of configurations to try (>= 1).", TypeConverters.toInt
)


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

    min_epochs = min_epochs_param
    max_epochs = max_epochs_param
    reduction_factor = reduction_factor_param
    num_models = num_models_param

    @takes_prediction_params
    @keyword_only
    def __init__(
        self, *, estimator_gen_fn: Any = None, search_space: dict[str, Any] | None = None,
        num_models: int = 27, min_epochs: int = 1, max_epochs: int = 9, reduction_factor: int = 3,
        evaluation_metric: str = "val_loss", mode: str = "auto", feature_columns: list[str] | None = None,
        label_columns: list[str] | None = None, store: Any = None, backend: Any = None, validation: Any = None,
        seed: int | None = None, verbose: int = 1, run_id: str | None = None, tensorboard: bool = True, mlflow_experiment: str | None = None, sample_weight_column: str | None = None, reader: str = "pyarrow",
        **prediction: Unpack[PredictionKwargs],
    ) -> None:  # fmt: skip
        super().__init__()
        self._setDefault(num_models=27, min_epochs=1, max_epochs=9, reduction_factor=3)
        self.setParams(**self._input_kwargs)

    def _algorithm(self, seed: int | None = None) -> SearchAlgorithm:
        low, high = self._epochs()
        return SuccessiveHalvingAlgorithm(
            self._space(), num_models=self.getOrDefault(self.num_models), min_epochs=low, max_epochs=high,
            reduction_factor=self._get("reduction_factor"), **self._common(seed),
        )  # fmt: skip


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

    min_epochs = min_epochs_param
    max_epochs = max_epochs_param
    reduction_factor = reduction_factor_param

    @takes_prediction_params
    @keyword_only
    def __init__(
        self, *, estimator_gen_fn: Any = None, search_space: dict[str, Any] | None = None,
        min_epochs: int = 1, max_epochs: int = 9, reduction_factor: int = 3,
        evaluation_metric: str = "val_loss", mode: str = "auto", feature_columns: list[str] | None = None,
        label_columns: list[str] | None = None, store: Any = None, backend: Any = None, validation: Any = None,
        seed: int | None = None, verbose: int = 1, run_id: str | None = None, tensorboard: bool = True, mlflow_experiment: str | None = None, sample_weight_column: str | None = None, reader: str = "pyarrow",
        **prediction: Unpack[PredictionKwargs],
    ) -> None:  # fmt: skip
        super().__init__()
        self._setDefault(min_epochs=1, max_epochs=9, reduction_factor=3)
        self.setParams(**self._input_kwargs)

    def _algorithm(self, seed: int | None = None) -> SearchAlgorithm:
        low, high = self._epochs()
        return HyperbandAlgorithm(
            self._space(), min_epochs=low, max_epochs=high, reduction_factor=self._get("reduction_factor"),
            **self._common(seed),
        )  # fmt: skip


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

    min_epochs = min_epochs_param
    max_epochs = max_epochs_param
    reduction_factor = reduction_factor_param
    num_models = num_models_param
    max_concurrent = max_concurrent_param

    @takes_prediction_params
    @keyword_only
    def __init__(
        self, *, estimator_gen_fn: Any = None, search_space: dict[str, Any] | None = None,
        num_models: int = 27, min_epochs: int = 1, max_epochs: int = 9, reduction_factor: int = 3,
        max_concurrent: int | None = None,
        evaluation_metric: str = "val_loss", mode: str = "auto", feature_columns: list[str] | None = None,
        label_columns: list[str] | None = None, store: Any = None, backend: Any = None, validation: Any = None,
        seed: int | None = None, verbose: int = 1, run_id: str | None = None, tensorboard: bool = True, mlflow_experiment: str | None = None, sample_weight_column: str | None = None, reader: str = "pyarrow",
        **prediction: Unpack[PredictionKwargs],
    ) -> None:  # fmt: skip
        super().__init__()
        self._setDefault(num_models=27, min_epochs=1, max_epochs=9, reduction_factor=3, max_concurrent=None)
        self.setParams(**self._input_kwargs)

    def _algorithm(self, seed: int | None = None) -> SearchAlgorithm:
        low, high = self._epochs()
        return ASHAAlgorithm(
            self._space(), num_models=self.getOrDefault(self.num_models), min_epochs=low, max_epochs=high,
            reduction_factor=self._get("reduction_factor"), max_concurrent=self._max_concurrent(),
            **self._common(seed),
        )  # fmt: skip


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

    num_models = num_models_param
    max_concurrent = max_concurrent_param

    @takes_prediction_params
    @keyword_only
    def __init__(
        self, *, estimator_gen_fn: Any = None, search_space: dict[str, Any] | None = None,
        num_models: int = 20, num_epochs: int = 1, max_concurrent: int | None = None,
        evaluation_metric: str = "val_loss", mode: str = "auto", feature_columns: list[str] | None = None,
        label_columns: list[str] | None = None, store: Any = None, backend: Any = None, validation: Any = None,
        seed: int | None = None, verbose: int = 1, run_id: str | None = None, tensorboard: bool = True, mlflow_experiment: str | None = None, sample_weight_column: str | None = None, reader: str = "pyarrow",
        **prediction: Unpack[PredictionKwargs],
    ) -> None:  # fmt: skip
        super().__init__()
        self._setDefault(num_models=20, max_concurrent=None)
        self.setParams(**self._input_kwargs)

    def _algorithm(self, seed: int | None = None) -> SearchAlgorithm:
        return TPEAlgorithm(
            self._space(), num_models=self.getOrDefault(self.num_models), num_epochs=self.getNumEpochs(),
            max_concurrent=self._max_concurrent(), **self._common(seed),
        )  # fmt: skip


__all__ = ["ASHASearch", "HyperbandSearch", "SuccessiveHalvingSearch", "TPESearch"]
