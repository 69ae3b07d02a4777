"""What every ``fit`` of the Spark ML layer does: validate, prepare the data, run MOP, collect.

``KerasEstimator.fit`` is a search of one configuration; ``GridSearch``/``RandomSearch`` pass their
algorithm. The order matters for users: every check that needs no Spark job runs first; then the
data is prepared (or reused) in a thread while the models are built and checked (a bad model cancels
the preparation), and that thread starts the workers as soon as the data is ready; then models are
written to the Store and trained (any error before that stops the workers again).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import logging
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from pyspark.sql import DataFrame

from cerebro_spark.backend.base import Backend
from cerebro_spark.backend.session import spark_handle
from cerebro_spark.backend.spark import SparkBackend
from cerebro_spark.data.reader import check_reader
from cerebro_spark.data.spec import DatasetSpec
from cerebro_spark.driver import DriverCallback, MopDriver, RunSettings, SearchResult
from cerebro_spark.driver.control import SearchControl
from cerebro_spark.errors import InvalidParamError
from cerebro_spark.ml._background import SparkWork
from cerebro_spark.ml._checks import (
    check_metric_is_reported,
    check_model_fits_data,
    check_prediction_plan,
    check_store_writable,
)
from cerebro_spark.ml._dataset import (
    DEFAULT_SPLIT_SEED,
    DataRequest,
    PreparedData,
    resolve_dataset,
    spark_session,
)
from cerebro_spark.ml._model_io import (
    compiled_model,
    effective_loss,
    load_trained_model,
    pickled_custom_objects,
    structure_key,
    write_initial_model,
)
from cerebro_spark.ml._params import HasDataParams
from cerebro_spark.observers.search_observers import SearchObservers
from cerebro_spark.search import SearchAlgorithm, Trial
from cerebro_spark.store import layout
from cerebro_spark.store.base import Store
from cerebro_spark.training import keras_backend
from cerebro_spark.training.model_spec import ModelSpec
from cerebro_spark.training.tf_import import import_tensorflow

if TYPE_CHECKING:
    from cerebro_spark.ml.estimator import KerasEstimator

logger = logging.getLogger(__name__)


@dataclass
class FitOutcome:
    """A finished run: its records, the prepared data and every model's spec."""

    result: SearchResult
    dataset: DatasetSpec
    specs: dict[str, ModelSpec]
    store: Store


def derived_seed(seed: int, *names: object) -> int:
    """A 31-bit seed derived from ``seed`` and ``names`` (stable across processes)."""
    digest = hashlib.sha256(repr((seed, *names)).encode()).digest()
    return int.from_bytes(digest[:4], "big") >> 1


def resolve_backend(owner: HasDataParams) -> Backend:
    backend = owner.getBackend()
    return SparkBackend() if backend is None else backend


def resolve_run(owner: HasDataParams) -> tuple[str, int]:
    """The run id (the ``run_id`` param, else a new one) and the run's seed: the ``seed`` param, else
    the seed an earlier session of this run id recorded (a resume draws nothing new), else a fresh one.
    """
    run_id = owner.getOrDefault(owner.run_id) or layout.new_run_id(
        datetime.now(timezone.utc), secrets.token_hex(3)
    )
    layout.validate_run_id(run_id)
    seed = owner.getSeed()
    store = owner.getStore()
    if seed is None and store.exists(layout.run_record_key(run_id)):
        seed = int(store.read_json(layout.run_record_key(run_id))["seed"])
    return run_id, secrets.randbelow(2**31) if seed is None else seed


def run_search(
    owner: HasDataParams,
    df: DataFrame | PreparedData | Any,
    algorithm: SearchAlgorithm,
    make_estimator: Callable[[Trial], KerasEstimator],
    *,
    metric: str,
    mode: str,
    callbacks: Sequence[DriverCallback] = (),
    run: tuple[str, int] | None = None,
    control: SearchControl | None = None,
    dataset: DatasetSpec | None = None,
) -> FitOutcome:
    """Prepare ``df``, then train every model ``algorithm`` asks for with MOP.

    ``callbacks`` see every unit and epoch; the observers the params ask for (TensorBoard files,
    MLflow runs, the progress display: see :mod:`cerebro_spark.observers.search_observers`) are added to them.
    ``run`` is ``(run_id, seed)`` from :func:`resolve_run` (resolved here when None); a run id that
    the Store already holds is resumed where it stopped. ``control`` takes live commands (see
    :class:`~cerebro_spark.driver.control.SearchControl`). ``dataset``: data prepared before (then
    ``df`` may be None and nothing is prepared).
    """
    store, backend = owner.getStore(), resolve_backend(owner)
    user_seed = owner.getSeed()
    run_id, seed = run if run is not None else resolve_run(owner)
    check_store_writable(store)

    validation = owner.getOrDefault(owner.validation)
    reader = owner.getReader()
    check_reader(reader)  # on the driver, before any job: a clear error where Petastorm is missing
    prepared = isinstance(df, PreparedData)
    if metric.startswith("val_") and validation in (None, 0) and not prepared:
        raise InvalidParamError(
            f"The evaluation metric {metric!r} needs validation data, but validation is {validation!r}. "
            "Set validation= (a fraction or a boolean column) or rank by a training metric such as 'loss'."
        )
    trials = algorithm.initial_trials()
    keras_backend_name = keras_backend.check(
        keras_backend.configured()
    )  # the driver's: the workers run it too
    backend.set_warm_up(WARM_UP_TASKS.get(keras_backend_name))
    preparing = None
    if dataset is None:  # the preparation's Spark jobs run while TensorFlow loads for the model builds
        spark = spark_session(df)  # here: a thread of its own sees no active session
        request = DataRequest(
            feature_columns=tuple(owner.getFeatureColumns()),
            label_columns=tuple(owner.getLabelColumns()),
            sample_weight_column=owner.getOrDefault(owner.sample_weight_column),
            validation=validation,
            split_seed=user_seed if user_seed is not None else DEFAULT_SPLIT_SEED,
            num_workers=backend.num_workers,
            run_id=run_id,
        )
        resolve = functools.partial(resolve_dataset, df, request, spark, store, metric)
        description = (
            f"cerebro_spark run {run_id}: {len(trials)} models hopping on {backend.num_workers} workers"
        )
        prepare_then_start = functools.partial(_prepare_then_start, resolve, backend, description)
        preparing = SparkWork(
            prepare_then_start, spark_handle(spark) if spark is not None else None, "prepare"
        )
    try:
        estimators = {
            t.model_id: _estimator_for(make_estimator, t, user_seed, keras_backend_name) for t in trials
        }
        for est in estimators.values():  # the search's prediction params, or the estimator's own
            check_prediction_plan(est.getModel(), owner if owner.hasParam("estimator_gen_fn") else est)
    except BaseException:
        if preparing is not None:  # a bad model fails as early as without the overlap
            preparing.cancel()
        backend.shutdown()  # the workers may have started
        raise
    try:  # from here the workers may be running: stopped on any error before the driver stops them
        if preparing is not None:
            dataset = preparing.result()
        check_reader(reader, dataset)
        dataset = dataclasses.replace(dataset, reader=reader)  # the workers read with the chosen reader
        for model_id, est in estimators.items():
            check_model_fits_data(est.getModel(), dataset, model_id, loss=effective_loss(est))
        for model_id, est in list(estimators.items())[:1]:  # the metric names of one model: before training
            check_metric_is_reported(est, dataset, metric, model_id)

        params_by_model: dict[str, dict[str, Any]] = {}

        specs: dict[str, ModelSpec] = {}

        def model_factory(trial: Trial) -> ModelSpec:
            params_by_model[trial.model_id] = dict(trial.params)
            est = estimators.pop(trial.model_id, None) or _estimator_for(
                make_estimator, trial, user_seed, keras_backend_name
            )
            if store.exists(layout.initial_model_key(run_id, trial.model_id)):  # resumed: keep its files
                specs[trial.model_id] = _existing_model_spec(run_id, trial, est)
            else:
                specs[trial.model_id] = write_initial_model(store, run_id, trial.model_id, est, trial.params)
            return specs[trial.model_id]

        def load_model(model_id: str, version: int) -> Any:
            return load_trained_model(store, specs[model_id], version)

        settings = RunSettings(
            run_id=run_id,
            metric=metric,
            mode=mode,
            seed=seed,
            deterministic=user_seed is not None,
            keras_backend=keras_backend_name,
        )
        verbose = owner.getOrDefault(owner.verbose)
        observers = SearchObservers.create(
            tensorboard=owner.getOrDefault(owner.tensorboard),
            mlflow_experiment=owner.getOrDefault(owner.mlflow_experiment),
            verbose=verbose,
            dataset=dataset,
            store=store,
            run_id=run_id,
            metric=metric,
            mode=mode,
            max_epochs=algorithm.max_epochs,
            params=params_by_model,
            load_model=load_model,
        )
        driver = MopDriver(
            backend,
            store,
            dataset,
            algorithm,
            model_factory,
            settings,
            callbacks=[*callbacks, *observers.callbacks],
            control=control,
        )
        observers.bind(driver.models)
        logger.info("run %s: %d models on %s, Store %s", run_id, len(trials), backend.describe(), store.url)
        result: SearchResult | None = None
        try:
            with _verbose_logging(0 if observers.live_table else verbose):  # the table shows every epoch
                result = driver.run(initial_trials=trials, resume=True)
        finally:
            observers.close(result)  # None: the search failed or was interrupted
        return FitOutcome(result, dataset, dict(driver.specs), store)
    except BaseException:
        backend.shutdown()
        raise


#: What each worker runs as soon as it starts (see ``Backend.set_warm_up``): its Keras backend's import.
WARM_UP_TASKS = {
    "tensorflow": "cerebro_spark.training.trainer:warm_up",
    "jax": "cerebro_spark.training.trainer:warm_up_jax",
}


def _prepare_then_start(
    resolve: Callable[[], DatasetSpec], backend: Backend, description: str
) -> DatasetSpec:
    """The data, then the workers at once: they start and import TensorFlow while the driver still
    imports it and builds and checks the models (``MopDriver`` finds them running)."""
    dataset = resolve()
    backend.set_description(description)
    backend.start()
    return dataset


def _existing_model_spec(run_id: str, trial: Trial, est: KerasEstimator) -> ModelSpec:
    """The spec of a model a resumed run wrote before (its ``.keras`` file and checkpoints stay)."""
    custom = pickled_custom_objects(est)
    return ModelSpec(
        run_id=run_id,
        model_id=trial.model_id,
        batch_size=est.getBatchSize(),
        custom_objects=custom,
        params=dict(trial.params),
        structure_key=structure_key(compiled_model(est), custom),
    )


def _estimator_for(
    make: Callable[[Trial], KerasEstimator], trial: Trial, seed: int | None, keras_backend_name: str
) -> KerasEstimator:
    if keras_backend_name == "tensorflow":
        import_tensorflow()  # before the user's function imports Keras: without TensorFlow's start-up lines
    if seed is not None:  # reproducible initial weights, independent of the other models
        import keras

        keras.utils.set_random_seed(derived_seed(seed, "init", trial.model_id))
    est = make(trial)
    est.validate_model_params()
    return est


@contextlib.contextmanager
def _verbose_logging(verbose: int) -> Iterator[None]:
    """With verbose >= 1 and no logging set up by the application, show the package's INFO lines."""
    package_logger = logging.getLogger("cerebro_spark")
    if verbose < 1 or package_logger.handlers or logging.getLogger().handlers:
        yield
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s", "%H:%M:%S"))
    previous = package_logger.level
    package_logger.addHandler(handler)
    package_logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        package_logger.removeHandler(handler)
        package_logger.setLevel(previous)
