"""The data a run trains on: a DataFrame prepared into the Store, or data prepared before.

``run_search`` reads the data params of the Estimator once into a :class:`DataRequest` (values, not
the Estimator) and calls :func:`resolve_dataset` in the preparation's thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from cerebro_spark.backend.session import spark_handle
from cerebro_spark.data.petastorm_dataset import decode_codec_columns
from cerebro_spark.data.prepare import load_prepared, prepare_data
from cerebro_spark.data.prepare_local import prepare_local
from cerebro_spark.data.spec import DatasetSpec
from cerebro_spark.errors import DataError, InvalidParamError
from cerebro_spark.store import layout
from cerebro_spark.store.base import Store

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


@dataclass(frozen=True)
class DataRequest:
    """What a fit's params say about its data, read once from the Estimator."""

    feature_columns: tuple[str, ...]
    label_columns: tuple[str, ...]
    sample_weight_column: str | None
    validation: Any
    split_seed: int  # the user's seed, else DEFAULT_SPLIT_SEED
    num_workers: int
    run_id: str

    @property
    def columns(self) -> list[str]:
        """Every column the preparation reads: features, labels and the weight column."""
        weight = [self.sample_weight_column] if self.sample_weight_column else []
        return [*self.feature_columns, *self.label_columns, *weight]


def resolve_dataset(
    df: Any,
    request: DataRequest,
    spark: SparkSession | None,
    store: Store,
    metric: str,
) -> DatasetSpec:
    """The data a run trains on: ``df`` prepared (or its prepared data reused), or the prepared data
    that ``fit_on_prepared_data`` names."""
    if df is None:
        raise InvalidParamError("run_search needs a DataFrame or prepared data. Received neither.")
    if not isinstance(df, PreparedData):
        return prepare(df, store, request)
    dataset = resolve_prepared(df.source, request, spark, store)
    if metric.startswith("val_") and not dataset.has_validation:
        raise InvalidParamError(
            f"The evaluation metric {metric!r} needs validation data, but the prepared data "
            f"{dataset.root!r} has none. Rank by a training metric such as 'loss'."
        )
    return dataset


def spark_session(df: Any) -> SparkSession | None:
    """The session that runs ``df``'s jobs: its own, or the caller's active one for prepared data (None
    without Spark: data prepared before is read from the Store alone, data the driver holds is prepared
    by the driver)."""
    if isinstance(df, DataFrame):
        return df.sparkSession
    if isinstance(df, PreparedData):
        return SparkSession.getActiveSession()
    return None


def prepare(df: Any, store: Store, request: DataRequest) -> DatasetSpec:
    """``df`` prepared into ``store`` (or the data prepared from it before), one partition per worker:
    a Spark DataFrame by Spark, data the driver holds (pandas, Arrow, Parquet path, Dask, Ray) by the
    driver (:mod:`cerebro_spark.data.prepare_local`)."""
    params = {
        "feature_columns": list(request.feature_columns),
        "label_columns": list(request.label_columns),
        "num_partitions": request.num_workers,
        "validation": request.validation,
        "seed": request.split_seed,
        "sample_weight_column": request.sample_weight_column,
    }
    if not isinstance(df, DataFrame):
        return prepare_local(df, store, **params)
    spark = spark_handle(df.sparkSession)
    with spark.driver_python(), spark.job_description(f"cerebro_spark run {request.run_id}: preparing data"):
        return prepare_data(df, store, **params)


def resolve_prepared(
    source: DatasetSpec | str, request: DataRequest, spark: SparkSession | None, store: Store
) -> DatasetSpec:
    """The prepared data ``fit_on_prepared_data`` trains on, checked against the request.

    A fingerprint, a ``data/<fingerprint>`` key or a DatasetSpec names data prepared earlier; any other
    string is a Parquet directory (a Store key, or a URL or path Spark reads), prepared once (and reused
    by fingerprint) with the request's columns, validation and seed.
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
        dataset = _prepare_directory(source, request, spark, store)
    wanted = (list(request.feature_columns), list(request.label_columns))
    found = ([c.name for c in dataset.features], [c.name for c in dataset.labels])
    if wanted != found:
        raise DataError(
            f"The prepared data {dataset.root!r} has feature columns {found[0]} and label columns "
            f"{found[1]}, but feature_columns={wanted[0]} and label_columns={wanted[1]} were given."
        )
    weight = request.sample_weight_column
    if (dataset.weight.name if dataset.weight is not None else None) != weight:
        raise DataError(
            f"The prepared data {dataset.root!r} has sample weight column "
            f"{dataset.weight.name if dataset.weight is not None else None!r}, but "
            f"sample_weight_column={weight!r} was given."
        )
    workers = request.num_workers
    if dataset.num_partitions != workers:
        raise DataError(
            f"The prepared data {dataset.root!r} has {dataset.num_partitions} training partitions, one per "
            f"worker, but the backend has {workers} workers. Use a backend with "
            f"{dataset.num_partitions} workers, or prepare the data again for {workers}."
        )
    return dataset


def _prepare_directory(
    path: str, request: DataRequest, spark: SparkSession | None, store: Store
) -> DatasetSpec:
    """A Parquet directory -> prepared data, once. A Petastorm dataset's codec fields (arrays stored as
    ``.npy`` bytes) are decoded on the way, in the preparation job (see
    :mod:`cerebro_spark.data.petastorm_dataset`)."""
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
        options = store.storage_options or None
    try:
        df = spark.read.parquet(where)
    except Exception as e:  # Spark's AnalysisException: no such path, or no Parquet there
        raise DataError(
            f"fit_on_prepared_data({path!r}): neither prepared data in Store {store.url!r} nor a Parquet "
            f"directory Spark can read at {where!r}: {e}"
        ) from e
    df = decode_codec_columns(df, where, request.columns, options)
    return prepare(df, store, request)
