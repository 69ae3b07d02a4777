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

from pyspark.sql import DataFrame, SparkSession

from cerebro_spark.backend._session import spark_handle
from cerebro_spark.backend.base import Backend
from cerebro_spark.data.prepare import load_prepared, prepare_data
from cerebro_spark.data.spec import ColumnSpec, DatasetSpec
from cerebro_spark.driver import DriverCallback, MopDriver, RunSettings, SearchResult
from cerebro_spark.driver.control import SearchControl
from cerebro_spark.errors import DataError, InvalidParamError, StoreError
from cerebro_spark.ml._background import SparkWork
from cerebro_spark.ml._model_io import (
    compiled_model,
    effective_loss,
    load_trained_model,
    pickled_custom_objects,
    structure_key,
    write_initial_model,
)
from cerebro_spark.ml._observers import SearchObservers
from cerebro_spark.ml._params import HasDataParams, validate_params
from cerebro_spark.search import SearchAlgorithm, Trial
from cerebro_spark.store import layout
from cerebro_spark.store.base import Store
from cerebro_spark.training.io_mapping import column_order
from cerebro_spark.training.model_spec import ModelSpec

if TYPE_CHECKING:
    from cerebro_spark.ml.estimator import KerasEstimator
    from cerebro_spark.ml.model import KerasModel

logger = logging.getLogger(__name__)

#: Seed of the train/validation split when the user gives none: the split stays reproducible and
#: prepared data stays reusable between fits.
DEFAULT_SPLIT_SEED = 0


@dataclass(frozen=True)
class PreparedData:
    """What ``fit_on_prepared_data`` passes to ``fit`` instead of a DataFrame: prepared data to train on.

    ``source`` is a :class:`DatasetSpec`, a fingerprint or ``"data/<fingerprint>"`` key of data prepared
    earlier in the Store, or the Store key or URL of a Parquet directory to prepare once.
    """

    source: DatasetSpec | str


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
    if backend is None:
        from cerebro_spark.backend.spark import SparkBackend

        backend = SparkBackend()
    return backend


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
    df: DataFrame | PreparedData | None,
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
    MLflow runs, the progress display: see :mod:`cerebro_spark.ml._observers`) are added to them.
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
    if reader == "petastorm":
        from cerebro_spark.data._petastorm import import_petastorm

        import_petastorm()  # on the driver, before any job: a clear error where Petastorm is missing
    prepared = isinstance(df, PreparedData)
    if metric.startswith("val_") and validation in (None, 0) and not prepared:
        raise InvalidParamError(
            f"The evaluation metric {metric!r} needs validation data, but validation is {validation!r}. "
            "Set validation= (a fraction or a boolean column) or rank by a training metric such as 'loss'."
        )
    trials = algorithm.initial_trials()
    backend.set_warm_up(WARM_UP_TASK)
    preparing = None
    if dataset is None:  # the preparation's Spark jobs run while TensorFlow loads for the model builds
        spark = _spark_session(df)  # here: a thread of its own sees no active session
        resolve = functools.partial(
            _resolve_dataset, owner, df, spark, store, backend.num_workers, run_id, validation, metric
        )
        description = (
            f"cerebro_spark run {run_id}: {len(trials)} models hopping on {backend.num_workers} workers"
        )
        prepare_then_start = functools.partial(_prepare_then_start, resolve, backend, description)
        preparing = SparkWork(
            prepare_then_start, spark_handle(spark) if spark is not None else None, "prepare"
        )
    try:
        estimators = {t.model_id: _estimator_for(make_estimator, t, user_seed) for t in trials}
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
        if reader == "petastorm":
            from cerebro_spark.data._petastorm import check_columns

            check_columns(dataset)
        dataset = dataclasses.replace(dataset, reader=reader)  # the workers read with the chosen reader
        for model_id, est in estimators.items():
            check_model_fits_data(est.getModel(), dataset, model_id, loss=effective_loss(est))
        for model_id, est in list(estimators.items())[:1]:  # the metric names of one model: before training
            check_metric_is_reported(est, dataset, metric, model_id)

        params_by_model: dict[str, dict[str, Any]] = {}

        specs: dict[str, ModelSpec] = {}

        def model_factory(trial: Trial) -> ModelSpec:
            params_by_model[trial.model_id] = dict(trial.params)
            est = estimators.pop(trial.model_id, None) or _estimator_for(make_estimator, trial, user_seed)
            if store.exists(layout.initial_model_key(run_id, trial.model_id)):  # resumed: keep its files
                specs[trial.model_id] = _existing_model_spec(run_id, trial, est)
            else:
                specs[trial.model_id] = write_initial_model(store, run_id, trial.model_id, est, trial.params)
            return specs[trial.model_id]

        def load_model(model_id: str, version: int) -> Any:
            return load_trained_model(store, specs[model_id], version)

        settings = RunSettings(
            run_id=run_id, metric=metric, mode=mode, seed=seed, deterministic=user_seed is not None
        )
        verbose = owner.getOrDefault(owner.verbose)
        observers = SearchObservers.create(
            owner, algorithm, dataset, store, run_id, metric, mode, params_by_model, load_model
        )
        driver = MopDriver(
            backend, store, dataset, algorithm, model_factory, settings,
            callbacks=[*callbacks, *observers.callbacks], control=control,
        )  # fmt: skip
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


#: What each worker runs as soon as it starts (see ``Backend.set_warm_up``): TensorFlow's import.
WARM_UP_TASK = "cerebro_spark.training.trainer:warm_up"


def _prepare_then_start(
    resolve: Callable[[], DatasetSpec], backend: Backend, description: str
) -> DatasetSpec:
    """The data, then the workers at once: they start and import TensorFlow while the driver still
    imports it and builds and checks the models (``MopDriver`` finds them running)."""
    dataset = resolve()
    backend.set_description(description)
    backend.start()
    return dataset


def _resolve_dataset(
    owner: HasDataParams,
    df: DataFrame | PreparedData | None,
    spark: SparkSession | None,
    store: Store,
    num_workers: int,
    run_id: str,
    validation: Any,
    metric: str,
) -> DatasetSpec:
    """The data a run trains on: ``df`` prepared (or its prepared data reused), or the prepared data
    that ``fit_on_prepared_data`` names."""
    if df is None:
        raise InvalidParamError("run_search needs a DataFrame or prepared data. Received neither.")
    if not isinstance(df, PreparedData):
        return _prepare(owner, df, store, num_workers, run_id, validation)
    dataset = resolve_prepared(owner, df.source, spark, store, num_workers, run_id)
    if metric.startswith("val_") and not dataset.has_validation:
        raise InvalidParamError(
            f"The evaluation metric {metric!r} needs validation data, but the prepared data "
            f"{dataset.root!r} has none. Rank by a training metric such as 'loss'."
        )
    return dataset


def _spark_session(df: DataFrame | PreparedData | None) -> SparkSession | None:
    """The session that runs ``df``'s jobs: its own, or the caller's active one (None without Spark:
    data prepared before is read from the Store alone)."""
    if isinstance(df, DataFrame):
        return df.sparkSession
    return SparkSession.getActiveSession()


def _existing_model_spec(run_id: str, trial: Trial, est: KerasEstimator) -> ModelSpec:
    """The spec of a model a resumed run wrote before (its ``.keras`` file and checkpoints stay)."""
    custom = pickled_custom_objects(est)
    return ModelSpec(
        run_id=run_id, model_id=trial.model_id, batch_size=est.getBatchSize(), custom_objects=custom,
        params=dict(trial.params), structure_key=structure_key(compiled_model(est), custom),
    )  # fmt: skip


def _prepare(
    owner: HasDataParams, df: DataFrame, store: Store, num_workers: int, run_id: str, validation: Any
) -> DatasetSpec:
    spark = spark_handle(df.sparkSession)
    user_seed = owner.getSeed()
    with spark.driver_python(), spark.job_description(f"cerebro_spark run {run_id}: preparing data"):
        return prepare_data(
            df, store,
            feature_columns=owner.getFeatureColumns(), label_columns=owner.getLabelColumns(),
            num_partitions=num_workers, validation=validation,
            seed=user_seed if user_seed is not None else DEFAULT_SPLIT_SEED,
            sample_weight_column=owner.getOrDefault(owner.sample_weight_column),
        )  # fmt: skip


def resolve_prepared(
    owner: HasDataParams,
    source: DatasetSpec | str,
    spark: SparkSession | None,
    store: Store,
    num_workers: int,
    run_id: str,
) -> DatasetSpec:
    """The prepared data ``fit_on_prepared_data`` trains on, checked against the owner's params.

    A fingerprint, a ``data/<fingerprint>`` key or a DatasetSpec names data prepared earlier; any other
    string is a Parquet directory (a Store key, or a URL or path Spark reads), prepared once (and reused
    by fingerprint) with the owner's columns, validation and seed.
    """
    if isinstance(source, DatasetSpec):
        source = source.root
    if not isinstance(source, str) or not source.strip("/"):
        raise InvalidParamError(
            "fit_on_prepared_data takes a DatasetSpec, a fingerprint, a 'data/<fingerprint>' key or the "
            f"path of a Parquet directory. Received: {source!r}."
        )
    name = source.strip("/")
    root = name if "/" in name else layout.data_root(name)
    outside = "://" in source or source.startswith("/")  # a URL or path, not a key in the Store
    if not outside and store.exists(f"{root}/_metadata.json"):
        dataset = load_prepared(store, root)
    else:
        dataset = _prepare_directory(owner, source, spark, store, num_workers, run_id)
    wanted = (owner.getFeatureColumns(), owner.getLabelColumns())
    found = ([c.name for c in dataset.features], [c.name for c in dataset.labels])
    if tuple(wanted) != found:
        raise DataError(
            f"The prepared data {dataset.root!r} has feature columns {found[0]} and label columns "
            f"{found[1]}, but feature_columns={wanted[0]} and label_columns={wanted[1]} were given."
        )
    weight = owner.getOrDefault(owner.sample_weight_column)
    if (dataset.weight.name if dataset.weight is not None else None) != weight:
        raise DataError(
            f"The prepared data {dataset.root!r} has sample weight column "
            f"{dataset.weight.name if dataset.weight is not None else None!r}, but "
            f"sample_weight_column={weight!r} was given."
        )
    if dataset.num_partitions != num_workers:
        raise DataError(
            f"The prepared data {dataset.root!r} has {dataset.num_partitions} training partitions, one per "
            f"worker, but the backend has {num_workers} workers. Use a backend with "
            f"{dataset.num_partitions} workers, or prepare the data again for {num_workers}."
        )
    return dataset


def _prepare_directory(
    owner: HasDataParams,
    path: str,
    spark: SparkSession | None,
    store: Store,
    num_workers: int,
    run_id: str,
) -> DatasetSpec:
    """A Parquet directory -> prepared data, once. A Petastorm dataset's codec fields (arrays stored as
    ``.npy`` bytes) are decoded on the way, in the preparation job (see
    :mod:`cerebro_spark.data._petastorm_dataset`)."""
    from cerebro_spark.data._petastorm_dataset import decode_codec_columns

    if spark is None:
        raise InvalidParamError(
            f"fit_on_prepared_data({path!r}): no prepared data has that name in Store {store.url!r}, and "
            "reading it as a Parquet directory needs an active SparkSession."
        )
    options: dict[str, Any] | None = None
    if "://" in path or path.startswith("/"):
        where = path
    else:  # a key in the Store
        where = store.local_path(path) or f"{store.url.rstrip('/')}/{path}"
        options = getattr(store, "_storage_options", None)
    try:
        df = spark.read.parquet(where)
    except Exception as e:  # Spark's AnalysisException: no such path, or no Parquet there
        raise DataError(
            f"fit_on_prepared_data({path!r}): neither prepared data in Store {store.url!r} nor a Parquet "
            f"directory Spark can read at {where!r}: {e}"
        ) from e
    weight = owner.getOrDefault(owner.sample_weight_column)
    columns = [*owner.getFeatureColumns(), *owner.getLabelColumns(), *([weight] if weight else [])]
    df = decode_codec_columns(df, where, columns, options)
    return _prepare(owner, df, store, num_workers, run_id, owner.getOrDefault(owner.validation))


def _estimator_for(make: Callable[[Trial], KerasEstimator], trial: Trial, seed: int | None) -> KerasEstimator:
    from cerebro_spark.ml.estimator import KerasEstimator
    from cerebro_spark.training.tf_import import import_tensorflow

    import_tensorflow()  # before the user's function imports Keras: without TensorFlow's start-up lines
    if seed is not None:  # reproducible initial weights, independent of the other models
        import keras

        keras.utils.set_random_seed(derived_seed(seed, "init", trial.model_id))
    est = make(trial)
    if not isinstance(est, KerasEstimator):
        raise InvalidParamError(
            f"estimator_gen_fn must return a KerasEstimator. Received: {type(est).__name__} "
            f"for the configuration {trial.params!r}."
        )
    est.validate_model_params()
    return est


def check_model_fits_data(model: Any, dataset: DatasetSpec, model_id: str, loss: Any = None) -> None:
    """The model's inputs and outputs must match the feature and label columns (mapped by name or by
    position: see :mod:`cerebro_spark.training.io_mapping`), in number and shape; with a sparse
    categorical ``loss``, the labels must be class indices of the output (their range is in the spec)."""
    features, labels = [c.name for c in dataset.features], [c.name for c in dataset.labels]
    try:
        x_order, y_order = column_order(model, features, labels)
    except DataError as e:
        raise DataError(f"Model {model_id!r} does not fit the data: {e}") from e
    for tensor, index in zip(model.outputs, y_order, strict=True):
        label = dataset.labels[index]
        produced = tuple(tensor.shape[1:])
        sparse = produced[:-1] == label.shape  # class indices, one per step (sequence labels)
        if len(label.shape) == 1 and label.shape[0] > 1 and produced != label.shape and not sparse:
            raise DataError(
                f"Model {model_id!r} has an output of shape {produced} (per row) but label column "
                f"{label.name!r} has rows of shape {label.shape}. Expected an output of shape "
                f"{label.shape} for these labels (or scalar labels, e.g. class indices)."
            )
    for tensor, index, output_loss in zip(model.outputs, y_order, _output_losses(model, loss), strict=True):
        _check_class_indices(dataset.labels[index], tuple(tensor.shape[1:]), output_loss, model_id)
    for tensor, index in zip(model.inputs, x_order, strict=True):
        column = dataset.features[index]
        expected = tuple(tensor.shape[1:])
        if len(expected) != len(column.shape) or any(
            e is not None and e != c for e, c in zip(expected, column.shape, strict=True)
        ):
            raise DataError(
                f"Model {model_id!r} expects input shape {expected} (per row) but feature column "
                f"{column.name!r} has rows of shape {column.shape}."
            )


#: Losses that take class indices in [0, classes) and fail inside TensorFlow (or give NaN on a GPU)
#: for any other label.
_SPARSE_LOSSES = frozenset({"sparse_categorical_crossentropy", "sparsecategoricalcrossentropy"})


def _output_losses(model: Any, loss: Any) -> list[Any]:
    """The loss of each of ``model``'s outputs (a str, a Loss, a function or None)."""
    count = len(model.outputs)
    if isinstance(loss, dict):
        names = list(getattr(model, "output_names", None) or [])
        return [loss.get(name) for name in names] if len(names) == count else [None] * count
    if isinstance(loss, (list, tuple)):
        return list(loss)[:count] + [None] * (count - len(loss))
    return [loss] * count


def _check_class_indices(label: ColumnSpec, produced: tuple[Any, ...], loss: Any, model_id: str) -> None:
    name = loss if isinstance(loss, str) else getattr(loss, "name", None) or getattr(loss, "__name__", "")
    classes = produced[-1] if produced else None
    if str(name).lower() not in _SPARSE_LOSSES or label.low is None or label.high is None or classes is None:
        return
    in_range = 0 <= label.low and label.high <= classes - 1
    if not in_range or not (float(label.low).is_integer() and float(label.high).is_integer()):
        raise DataError(
            f"Model {model_id!r} has an output of {classes} classes (shape {produced}) trained with {name}, "
            f"but label column {label.name!r} holds values from {label.low:g} to {label.high:g}. Expected "
            f"class indices from 0 to {classes - 1}: index the labels (e.g. pyspark.ml.feature.StringIndexer) "
            "or give the model as many outputs as there are classes."
        )


def check_prediction_plan(model: Any, source: Any) -> None:
    """The prediction params of ``source`` (the search, or the estimator itself) fit ``model``'s outputs:
    ``task='classification'`` needs outputs of shape (classes,). Checked before training, not at transform."""
    from cerebro_spark.ml._inference import plan_outputs

    plan_outputs(model, **{name: source.getOrDefault(name) for name in PREDICTION_PLAN_PARAMS})


#: The params :func:`~cerebro_spark.ml._inference.plan_outputs` takes.
PREDICTION_PLAN_PARAMS = ("prediction_col", "probability_col", "raw_prediction_col", "output_type", "task")


def check_store_writable(store: Store) -> None:
    """Write and delete a probe file, so that a Store that cannot be written fails before any Spark job."""
    key = f".cerebro-write-check-{secrets.token_hex(4)}"
    try:
        store.write_bytes(key, b"")
        store.delete(key)
    except OSError as exc:
        raise StoreError(
            f"The Store at {store.url!r} cannot be written: {type(exc).__name__}: {exc}. Pass store= a "
            "folder or URL that the driver and every executor can write."
        ) from exc


def check_metric_is_reported(est: KerasEstimator, dataset: DatasetSpec, metric: str, model_id: str) -> None:
    """``metric`` must be among the names the compiled model reports (Keras' names, ``val_`` for
    validation): found by computing the loss and metrics eagerly on two rows of zeros shaped like the
    prepared data (the names ``evaluate`` reports, in a tenth of its time: nothing is traced)."""
    import numpy as np

    from cerebro_spark.ml._model_io import compiled_model

    def zeros(columns: Sequence[Any], order: list[int]) -> Any:
        arrays = [np.zeros((2, *columns[i].shape), dtype=columns[i].dtype) for i in order]
        return arrays[0] if len(arrays) == 1 else arrays

    try:
        model = compiled_model(est)
        x_order, y_order = column_order(
            model, [c.name for c in dataset.features], [c.name for c in dataset.labels]
        )
        x, y = zeros(dataset.features, x_order), zeros(dataset.labels, y_order)
        y_pred = model(x, training=False)
        model.compute_loss(x, y, y_pred)  # builds the loss trackers ("loss", one per output)
        names = set(model.compute_metrics(x, y, y_pred, sample_weight=None))
    except Exception:  # the check is a courtesy; training reports any real problem with its traceback
        logger.debug("could not list the metric names of model %s", model_id, exc_info=True)
        return
    known = {*names, "learning_rate"} | ({f"val_{n}" for n in names} if dataset.has_validation else set())
    if metric not in known:
        raise InvalidParamError(
            f"The evaluation metric {metric!r} is not reported by model {model_id!r}: it reports "
            f"{sorted(known)}. Pass one of those as evaluation_metric, or add the metric to the "
            "estimator's metrics."
        )


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


def fit_single_estimator(est: KerasEstimator, df: DataFrame) -> KerasModel:
    """``KerasEstimator.fit``: a search of one configuration; returns the model after its last epoch."""
    from cerebro_spark.ml.model import KerasModel
    from cerebro_spark.search import SingleTrialAlgorithm

    validation = est.getOrDefault(est.validation)
    metric = "val_loss" if validation not in (None, 0, 0.0) else "loss"
    outcome = run_search(
        est, df, SingleTrialAlgorithm(est.getNumEpochs()), lambda trial: est, metric=metric, mode="min"
    )
    record = next(iter(outcome.result.models.values()))
    spec = outcome.specs[record.model_id]
    return KerasModel.from_store(outcome.store, spec, record.version, est, history=record.metric_series())


#: Params that decide the prepared data and the run: the same for every param map of fitMultiple.
SHARED_PARAMS = (
    "store", "backend", "feature_columns", "label_columns", "validation", "seed", "run_id", "tensorboard",
    "mlflow_experiment", "sample_weight_column", "reader",
)  # fmt: skip


def fit_param_maps(
    est: KerasEstimator, df: DataFrame, param_maps: Sequence[dict[Any, Any]]
) -> list[KerasModel]:
    """``KerasEstimator.fitMultiple``: one model per param map, all trained together with MOP on data
    prepared once; returns the models (after their last epoch) in the order of ``param_maps``."""
    from cerebro_spark.ml.model import KerasModel
    from cerebro_spark.search import FixedTrialsAlgorithm

    for param_map in param_maps:
        varying = sorted(p.name for p in param_map if p.name in SHARED_PARAMS)
        if varying:
            raise InvalidParamError(
                f"fitMultiple trains every param map on the same prepared data and run, so {varying} "
                f"cannot vary between param maps. Received a param map setting {varying}."
            )
    estimators = [est.copy(dict(param_map)) for param_map in param_maps]
    for copy in estimators:
        validate_params(copy)
        copy.validate_model_params()
    configs = [{p.name: _describe(v) for p, v in param_map.items()} for param_map in param_maps]
    algorithm = FixedTrialsAlgorithm(configs, [e.getNumEpochs() for e in estimators])
    by_id = {t.model_id: e for t, e in zip(algorithm.initial_trials(), estimators, strict=True)}
    metric = "val_loss" if est.getOrDefault(est.validation) not in (None, 0) else "loss"
    outcome = run_search(est, df, algorithm, lambda trial: by_id[trial.model_id], metric=metric, mode="min")
    return [
        KerasModel.from_store(
            outcome.store,
            outcome.specs[model_id],
            record.version,
            by_id[model_id],
            history=record.metric_series(),
        )  # fmt: skip
        for model_id, record in outcome.result.models.items()
    ]


def _describe(value: Any) -> Any:
    """A param value as a run record can show it (optimizers and models by their class name)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_describe(v) for v in value]
    return type(value).__name__
