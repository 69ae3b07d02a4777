"""GridSearch and RandomSearch: model selection as ``pyspark.ml`` Estimators."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pyspark.ml import Estimator
from pyspark.sql import DataFrame

from cerebro_spark.data.spec import DatasetSpec
from cerebro_spark.driver import DriverCallback
from cerebro_spark.driver.control import Command, SearchControl
from cerebro_spark.errors import InvalidParamError
from cerebro_spark.ml._fit import resolve_run, run_search
from cerebro_spark.ml._params import (
    HasDataParams,
    HasOutputParams,
    HasPredictionParams,
    param,
    validate_params,
)
from cerebro_spark.ml._persistence import Persistable
from cerebro_spark.ml.estimator import estimator_of
from cerebro_spark.ml.search_handle import SearchHandle
from cerebro_spark.ml.selection import ModelSelectionModel
from cerebro_spark.search import (
    GridSearchAlgorithm,
    RandomSearchAlgorithm,
    SearchAlgorithm,
    Trial,
    resolve_mode,
    validate_space,
)
from cerebro_spark.store import layout


class _ModelSelection(Estimator, HasDataParams, HasPredictionParams, HasOutputParams, Persistable):
    """What every search shares: every param but the algorithm's own.

    The prediction params (``prediction_col``, ``probability_col``, ``raw_prediction_col``,
    ``output_type``, ``task``, ``inference_batch_size``) go to the :class:`ModelSelectionModel` and to
    every model it gives; those of the estimators ``estimator_gen_fn`` returns are not used.

    Every search saves and loads like any Spark ML stage (``write().save(path)``, ``load(path)``); the
    ``estimator_gen_fn`` is saved with cloudpickle (see docs/persistence.md).
    """

    estimator_gen_fn = param("estimator_gen_fn")
    search_space = param("search_space")
    evaluation_metric = param("evaluation_metric")
    mode = param("mode")

    def _algorithm(self, seed: int | None = None) -> SearchAlgorithm:
        """The search algorithm; ``seed`` is the run's (default: the seed param, or a fresh one)."""
        raise NotImplementedError

    def _fit(self, dataset: DataFrame) -> ModelSelectionModel:
        return self._run(dataset)

    def fit_async(self, dataset: DataFrame, params: dict[Any, Any] | None = None) -> SearchHandle:
        """Start the search in a background thread; return a handle to watch and steer it.

        The handle can stop a model, resume a stopped or paused one, add configurations, show the
        leaderboard so far, interrupt the search, and give the :class:`ModelSelectionModel` at the end.
        Commands take effect when the next unit (sub-epoch) completes. See docs/control.md.

        Examples
        --------
        >>> handle = search.fit_async(train_df)  # doctest: +SKIP
        >>> handle.leaderboard()  # doctest: +SKIP
        >>> handle.stop_model("m0003"); handle.add_models([{"lr": 3e-3}])  # doctest: +SKIP
        >>> result = handle.result()  # doctest: +SKIP
        """
        search = self.copy(params) if params else self
        validate_params(search)
        run = resolve_run(search)
        control = SearchControl()
        return SearchHandle.start(run[0], control, lambda: search._run(dataset, control=control, run=run))

    def _run(
        self,
        dataset: DataFrame | None,
        *,
        control: SearchControl | None = None,
        run: tuple[str, int] | None = None,
        prepared: DatasetSpec | None = None,
        callbacks: Sequence[DriverCallback] = (),
    ) -> ModelSelectionModel:
        """Run (or resume) the search; ``prepared``: the run's prepared data instead of ``dataset``;
        ``callbacks``: more driver callbacks (tests use them to interrupt a search at a chosen point)."""
        validate_params(self)
        gen_fn = self.getOrDefault(self.estimator_gen_fn)
        if not callable(gen_fn):
            raise InvalidParamError(
                f"The 'estimator_gen_fn' param of {type(self).__name__} must be a function of a configuration "
                f"returning a KerasEstimator. Received: {gen_fn!r}."
            )
        metric = self.getOrDefault(self.evaluation_metric)
        mode = resolve_mode(metric, self.getOrDefault(self.mode))
        run_id, seed = run if run is not None else resolve_run(self)
        outcome = run_search(
            self,
            dataset,
            self._algorithm(seed),
            lambda trial: estimator_of(gen_fn, trial.params),
            metric=metric,
            mode=mode,
            run=(run_id, seed),
            control=control,
            dataset=prepared,
            callbacks=callbacks,
        )
        return ModelSelectionModel._create(outcome.result, outcome.specs, outcome.store, self)

    def _continue_run(
        self, run_id: str, commands: Sequence[Command], params: dict[str, Any] | None = None
    ) -> ModelSelectionModel:
        """Resume run ``run_id`` on its prepared data with ``commands`` applied first (continue_training);
        ``params``: values (by name) of this search's params to use instead, such as prediction params."""
        store = self.getStore()
        record = store.read_json(layout.run_record_key(run_id))
        prepared = DatasetSpec.from_dict(store.read_json(f"{record['dataset']['root']}/_metadata.json"))
        control = SearchControl()
        futures = [control.submit(command) for command in commands]
        overrides = {self.getParam(name): value for name, value in (params or {}).items()}
        search = self.copy({**overrides, self.run_id: run_id})
        result = search._run(None, control=control, run=(run_id, int(record["seed"])), prepared=prepared)
        for future in futures:
            future.result()  # raises the error of a command that did not apply
        return result

    def _space(self) -> dict[str, Any]:
        return validate_space(self.getOrDefault(self.search_space) or {})


class GridSearch(_ModelSelection):
    """Train every configuration of a grid with Model Hopper Parallelism; keep the best.

    Parameters
    ----------
    estimator_gen_fn : callable
        ``estimator_gen_fn(params) -> KerasEstimator`` for one configuration.
    search_space : dict
        Name -> ``hp_choice([...])`` (or a ``q`` dimension, or a constant); the grid is their product.
    num_epochs : int, default 1
        Epochs per configuration.
    evaluation_metric : str, default 'val_loss'
        Ranks models; ``mode`` says whether smaller or larger is better ('auto' infers it).
    feature_columns, label_columns, store, backend, validation, seed, verbose, run_id, tensorboard
        See ``KerasEstimator``.
    mlflow_experiment, sample_weight_column, reader
        See ``KerasEstimator``.
    prediction_col, probability_col, raw_prediction_col, output_type, task, inference_batch_size
        How the fitted models write predictions, as for ``KerasEstimator``: they go to the
        :class:`ModelSelectionModel` and every model it gives (see docs/columns.md).

    Examples
    --------
    >>> search = GridSearch(backend=backend, store=store, estimator_gen_fn=estimator_gen_fn,  # doctest: +SKIP
    ...                     search_space={"lr": hp_choice([1e-2, 1e-3])}, num_epochs=5,
    ...                     evaluation_metric="val_accuracy", validation=0.2,
    ...                     feature_columns=["features"], label_columns=["label"], seed=7)
    >>> result = search.fit(train_df)  # doctest: +SKIP
    """

    def _algorithm(self, seed: int | None = None) -> SearchAlgorithm:
        return GridSearchAlgorithm(self._space(), self.getNumEpochs())


class RandomSearch(_ModelSelection):
    """Train ``num_models`` configurations sampled from the search space; keep the best.

    Each dimension draws from its own stream of one seeded generator, so dimensions are independent
    and the same seed gives the same configurations.

    Parameters
    ----------
    num_models : int, default 10
        Configurations to sample.
    estimator_gen_fn, search_space, num_epochs, evaluation_metric, mode
        As for :class:`GridSearch`.
    feature_columns, label_columns, store, backend, validation, seed, verbose, run_id, tensorboard
        As for :class:`GridSearch`.
    mlflow_experiment, sample_weight_column, reader
        As for :class:`GridSearch`.
    prediction_col, probability_col, raw_prediction_col, output_type, task, inference_batch_size
        As for :class:`GridSearch`.
    """

    num_models = param("num_models")

    def _algorithm(self, seed: int | None = None) -> SearchAlgorithm:
        seed = seed if seed is not None else self.getSeed()
        return RandomSearchAlgorithm(
            self._space(), self.getOrDefault(self.num_models), self.getNumEpochs(), seed=seed
        )


__all__ = ["GridSearch", "ModelSelectionModel", "RandomSearch", "Trial"]
