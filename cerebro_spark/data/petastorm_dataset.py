"""Existing Petastorm datasets (``materialize_dataset``): decode their codec fields into array columns.

Petastorm stores a field with ``ScalarCodec`` as a plain Parquet column, but one with ``NdarrayCodec`` (or
``CompressedNdarrayCodec``) as binary: each row's array in NumPy's ``.npy`` (``.npz``) format. The field's
dtype and shape are only in the dataset's Unischema, pickled into ``_common_metadata``. So when
``fit_on_prepared_data`` takes in a Parquet directory whose selected columns are binary and which carries a
Unischema, :func:`decode_codec_columns` turns those columns into the numeric and array columns that data
preparation understands, inside the preparation job: the dataset is converted once, into the project's own
prepared layout, and every later fit (with either reader) reuses it.

Reading the Unischema needs Petastorm (the pickle names its classes), imported lazily; decoding does not (it is
``numpy.load`` on the executors), so only values cross to them.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, BinaryType, DataType, FloatType, LongType

from cerebro_spark.data._columns import col
from cerebro_spark.data._petastorm import INSTALL_HINT
from cerebro_spark.errors import DataError

logger = logging.getLogger(__name__)

#: The ``_common_metadata`` key under which Petastorm's ``materialize_dataset`` pickles the Unischema.
UNISCHEMA_KEY = b"dataset-toolkit.unischema.v1"
#: Petastorm codecs whose bytes are NumPy's own formats (``.npy``, ``.npz`` with one array ``arr``).
_NUMPY_CODECS = ("NdarrayCodec", "CompressedNdarrayCodec")
_MAX_DIMENSIONS = 2  # data preparation takes scalars, arrays and arrays of arrays


def has_unischema(url: str, storage_options: Mapping[str, Any] | None = None) -> bool:
    """Whether the Parquet directory at ``url`` is a Petastorm dataset: its ``_common_metadata`` holds a
    Unischema. Reads one small file with fsspec and pyarrow; needs no Petastorm."""
    import fsspec
    import pyarrow.parquet as pq

    try:
        fs, root = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
        path = f"{root.rstrip('/')}/_common_metadata"
        if not fs.exists(path):
            return False
        with fs.open(path, "rb") as f:
            metadata = pq.read_schema(f).metadata or {}
    except Exception:  # an unreachable or unusual filesystem: treated as plain Parquet
        logger.debug("could not look for a Petastorm Unischema under %s", url, exc_info=True)
        return False
    return UNISCHEMA_KEY in metadata


def decode_codec_columns(
    df: DataFrame, url: str, columns: Sequence[str], storage_options: Mapping[str, Any] | None = None
) -> DataFrame:
    """``df`` (the Parquet directory at ``url``) with its binary Petastorm codec fields among ``columns``
    decoded into numeric, array or array-of-arrays columns of the same names.

    A directory without a Unischema, or whose selected columns are not binary, comes back unchanged (data
    preparation then reports any column it cannot take). No Spark job runs here: the decoding runs in the
    preparation job.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        The directory as ``spark.read.parquet`` reads it.
    url : str
        The directory's URL or absolute path (where its ``_common_metadata`` is).
    columns : sequence of str
        The feature, label and weight columns to train on.
    storage_options : mapping, optional
        fsspec options of the directory's filesystem (credentials of an object store).

    Returns
    -------
    pyspark.sql.DataFrame

    Raises
    ------
    DataError
        Naming the column: Petastorm is not installed (it is needed to read the Unischema), the field uses a
        codec other than ``NdarrayCodec``/``CompressedNdarrayCodec``, or its rows have more than two
        dimensions.
    """
    types = {field.name: field.dataType for field in df.schema.fields}
    binary = [name for name in columns if isinstance(types.get(name), BinaryType)]
    if not binary or not has_unischema(url, storage_options):
        return df
    fields = _unischema_fields(url, binary, storage_options)
    decoders = {name: _decoder(name, *_field_layout(name, fields.get(name), url)) for name in binary}
    logger.info("decoding the Petastorm codec fields %s of %s", binary, url)
    return df.select(*[decoders[n](col(n)).alias(n) if n in decoders else col(n) for n in df.columns])


def _unischema_fields(
    url: str, names: list[str], storage_options: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The Unischema's fields, by name; a DataError naming ``names`` when Petastorm is missing."""
    try:
        from petastorm.etl.dataset_metadata import get_schema_from_dataset_url
    except ImportError as err:
        listed = ", ".join(map(repr, names))
        raise DataError(
            f"Column(s) {listed} of the Petastorm dataset {url!r} are binary: Petastorm codec fields "
            "(NdarrayCodec stores each array as .npy bytes). Decoding them needs the dataset's Unischema, "
            f"which needs Petastorm, and Petastorm is not installed: {INSTALL_HINT}. Or decode them into "
            "array columns with Spark first."
        ) from err
    location = url if "://" in url else f"file://{url}"
    with warnings.catch_warnings():
        # Petastorm 0.13.1 calls pyarrow 14 APIs that warn of their removal: nothing a user can act on.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            schema = get_schema_from_dataset_url(
                location, storage_options=dict(storage_options or {}) or None
            )
        except Exception as e:
            raise DataError(
                f"Could not read the Petastorm Unischema of {url!r}: {type(e).__name__}: {e}"
            ) from e
    return dict(schema.fields)


def _field_layout(name: str, field: Any, url: str) -> tuple[int, bool]:
    """The number of dimensions of a codec field's rows and whether its numbers are integral."""
    if field is None:
        raise DataError(
            f"Column {name!r} of the Petastorm dataset {url!r} is binary but not a field of its Unischema: "
            "cannot tell how to decode it. Decode it into an array column with Spark first."
        )
    codec = type(field.codec).__name__
    if codec not in _NUMPY_CODECS:
        raise DataError(
            f"Field {name!r} of the Petastorm dataset {url!r} is binary, stored with {codec}: "
            f"fit_on_prepared_data decodes binary fields stored with {' or '.join(_NUMPY_CODECS)}. "
            "Decode it into a numeric or array column with Spark first."
        )
    shape = tuple(field.shape)
    if len(shape) > _MAX_DIMENSIONS:
        raise DataError(
            f"Field {name!r} of the Petastorm dataset {url!r} has rows of shape {shape}: cerebro_spark trains "
            "on scalars, arrays and arrays of arrays (up to 2 dimensions per row). Reshape it with Spark first."
        )
    dtype = np.dtype(field.numpy_dtype)
    if not (np.issubdtype(dtype, np.number) or dtype == np.bool_):
        raise DataError(
            f"Field {name!r} of the Petastorm dataset {url!r} holds {dtype} values. Expected numbers or booleans."
        )
    return len(shape), bool(np.issubdtype(dtype, np.integer) or dtype == np.bool_)


def _decoder(name: str, ndim: int, integral: bool) -> Any:
    """A pandas UDF: a column of a codec field's bytes -> its values as a column of ``ndim`` array levels."""
    spark_type: DataType = LongType() if integral else FloatType()
    for _ in range(ndim):
        spark_type = ArrayType(spark_type, containsNull=False)
    dtype = np.int64 if integral else np.float32

    def decode(values: pd.Series) -> pd.Series:
        return pd.Series([None if v is None else _row(v, dtype, ndim, name) for v in values], dtype=object)

    decode.__name__ = decode.__qualname__ = "petastorm_decode"  # its name in the plan, and so the fingerprint
    return F.pandas_udf(decode, spark_type)  # type: ignore[call-overload]


def _row(value: bytes, dtype: type, ndim: int, name: str) -> Any:
    """One row's bytes -> a Python scalar, a 1-d array, or a list of 1-d arrays (what Arrow converts)."""
    loaded = np.load(io.BytesIO(value), allow_pickle=False)
    if isinstance(loaded, np.lib.npyio.NpzFile):  # CompressedNdarrayCodec: one array named "arr"
        with loaded:
            loaded = loaded["arr"]
    array: np.ndarray = np.asarray(loaded, dtype=dtype)
    if array.ndim != ndim:
        raise DataError(
            f"Petastorm field {name!r}: a row holds an array of shape {array.shape}, but the Unischema "
            f"declares {ndim} dimension(s)"
        )
    if ndim == 0:
        return array.item()
    return array if ndim == 1 else list(array)
