"""DeepPostures HDF5 files -> a Spark DataFrame of sequences of consecutive 10-second windows.

A directory laid out as ``<root>/<subject>/<YYYY-MM-DD>.h5`` (see ``generate.py`` for the datasets) becomes
one row per sequence of ``seq_len`` consecutive windows:

===============  ==========================  =====================================================
column           Spark type                  content
===============  ==========================  =====================================================
``subject``      string                      the subject's folder name
``day``          string                      the file's name without ``.h5``
``start_time``   double                      ``time`` of the sequence's first window
``features``     array<array<float>>         ``(seq_len, 300)``: each window's 100 x 3 samples, row-major
``labels``       array<bigint>               ``(seq_len,)``: 0 sitting, 1 not sitting
===============  ==========================  =====================================================

cerebro_spark stores array-of-array columns as 2-D per-row arrays, so each window's ``(100, 3)`` samples
travel flattened to 300 numbers (``x0, y0, z0, x1, ...``) and the model reshapes them back.

A sequence never crosses a window that is asleep, not worn or unlabelled, a jump in ``time``, or the
end of a file (one day); the windows left over at the end of each unbroken run, fewer than ``seq_len``,
are dropped, as DeepPostures' own training code does.

The files are read where the rows are needed: :func:`load_sequences` makes a DataFrame of file paths
and reads each file on an executor (``mapInArrow``), so the driver never holds the data; every
executor must reach ``root`` (a shared folder, or any fsspec URL such as ``s3://`` or ``hdfs://``).
``local=True`` reads on the driver instead, simpler for small data.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from typing import Any

import fsspec
import h5py
import numpy as np
import pyarrow as pa

from cerebro_spark.errors import DataError, InvalidParamError

SAMPLES, AXES = 100, 3
WINDOW_SECONDS = 10.0
WINDOWS_PER_MINUTE = 6

SCHEMA = "subject string, day string, start_time double, features array<array<float>>, labels array<bigint>"
ARROW_SCHEMA = pa.schema([
    ("subject", pa.string()),
    ("day", pa.string()),
    ("start_time", pa.float64()),
    ("features", pa.list_(pa.list_(pa.float32()))),
    ("labels", pa.list_(pa.int64())),
])  # fmt: skip


def windows_for(minutes: float) -> int:
    """Windows of 10 s in a sequence of ``minutes`` (7 -> 42, 9 -> 54)."""
    windows = minutes * WINDOWS_PER_MINUTE
    if windows < 1 or not math.isclose(windows, round(windows)):
        raise InvalidParamError(
            f"A sequence must be a whole number (>= 1) of 10-second windows. Received: minutes={minutes!r}."
        )
    return int(round(windows))


def list_day_files(root: str) -> list[str]:
    """The ``<root>/<subject>/<day>.h5`` files, sorted, as URLs every executor can open.

    Raises
    ------
    DataError
        If there are none.
    """
    fs, path = fsspec.core.url_to_fs(str(root))
    found = sorted(fs.glob(f"{path.rstrip('/')}/*/*.h5"))
    if not found:
        raise DataError(
            f"No DeepPostures files under {root!r}: expected <root>/<subject>/<YYYY-MM-DD>.h5 files."
        )
    return [fs.unstrip_protocol(p) for p in found]


def usable_runs(
    time: np.ndarray, non_wear: np.ndarray, sleeping: np.ndarray, label: np.ndarray
) -> np.ndarray:
    """Runs of consecutive windows that are worn, awake and labelled: an ``(r, 2)`` array of [start, stop).

    Consecutive means each window starts 10 s after the previous one; any other step in ``time`` breaks
    the run too.
    """
    usable = (non_wear == 0) & (sleeping == 0) & (label >= 0)
    if len(usable) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    contiguous = np.isclose(np.diff(time), WINDOW_SECONDS, atol=0.5)
    # a run starts at a usable window whose predecessor is unusable, missing or not 10 s before it
    starts_run = usable & ~np.concatenate([[False], usable[:-1] & contiguous])
    ends_run = usable & ~np.concatenate([usable[1:] & contiguous, [False]])
    return np.stack([np.flatnonzero(starts_run), np.flatnonzero(ends_run) + 1], axis=1)


def read_day(url: str) -> dict[str, np.ndarray]:
    """The five datasets of one file, checked against the DeepPostures layout.

    Raises
    ------
    DataError
        Naming the file and the dataset that is missing or has the wrong shape.
    """
    with fsspec.open(url, "rb") as raw, h5py.File(raw, "r") as f:
        missing = [name for name in ("time", "data", "non_wear", "sleeping", "label") if name not in f]
        if missing:
            raise DataError(
                f"DeepPostures file {url!r} lacks dataset(s) {missing}: expected time, data, non_wear, "
                f"sleeping and label. Received: {sorted(f.keys())}."
            )
        day = {name: f[name][()] for name in ("time", "data", "non_wear", "sleeping", "label")}
    n = len(day["time"])
    expected = {"data": (n, SAMPLES, AXES), "non_wear": (n,), "sleeping": (n,), "label": (n,), "time": (n,)}
    for name, shape in expected.items():
        if day[name].shape != shape:
            raise DataError(
                f"Dataset {name!r} of DeepPostures file {url!r} must have shape {shape} "
                f"(N = {n} windows of {SAMPLES} samples x {AXES} axes). Received: {day[name].shape}."
            )
    return day


def day_sequences(url: str, seq_len: int) -> pa.RecordBatch:
    """All sequences of ``seq_len`` windows of one file, as one Arrow batch of :data:`ARROW_SCHEMA`."""
    day = read_day(url)
    runs = usable_runs(day["time"], day["non_wear"], day["sleeping"], day["label"])
    starts = [np.arange(a, b - seq_len + 1, seq_len) for a, b in runs]
    first = np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)
    index = first[:, None] + np.arange(seq_len)  # (sequences, seq_len)
    features = day["data"][index].astype(np.float32, copy=False).reshape(-1)
    labels = day["label"][index].astype(np.int64, copy=False).reshape(-1)
    count = len(first)
    parts = url.rstrip("/").split("/")
    window_offsets = pa.array(np.arange(count * seq_len + 1, dtype=np.int32) * (SAMPLES * AXES))
    sequence_offsets = pa.array(np.arange(count + 1, dtype=np.int32) * seq_len)
    windows = pa.ListArray.from_arrays(window_offsets, pa.array(features, pa.float32()))
    columns = [
        pa.array([parts[-2]] * count, pa.string()),
        pa.array([parts[-1].removesuffix(".h5")] * count, pa.string()),
        pa.array(day["time"][first].astype(np.float64), pa.float64()),
        pa.ListArray.from_arrays(sequence_offsets, windows),
        pa.ListArray.from_arrays(sequence_offsets, pa.array(labels, pa.int64())),
    ]
    return pa.RecordBatch.from_arrays(columns, schema=ARROW_SCHEMA)


def _read_paths(batches: Iterator[pa.RecordBatch], seq_len: int) -> Iterator[pa.RecordBatch]:
    """mapInArrow's function: a batch of file URLs in, one batch of sequences per file out."""
    for batch in batches:
        for url in batch.column("path").to_pylist():
            yield day_sequences(url, seq_len)


def load_table(root: str, seq_len: int) -> pa.Table:
    """Every sequence of ``seq_len`` windows under ``root``, read here (no Spark): the rows of
    :func:`load_sequences` as one Arrow table, for the engines without Spark."""
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
        raise InvalidParamError(f"seq_len must be an int >= 1 (windows per sequence). Received: {seq_len!r}.")
    return pa.Table.from_batches(
        [day_sequences(url, seq_len) for url in list_day_files(root)], schema=ARROW_SCHEMA
    )


def load_sequences(
    spark: Any, root: str, seq_len: int, *, local: bool = False, num_partitions: int | None = None
) -> Any:
    """A DataFrame of sequences of ``seq_len`` consecutive windows from every file under ``root``.

    Parameters
    ----------
    spark : SparkSession
        The session.
    root : str
        A folder or fsspec URL holding ``<subject>/<YYYY-MM-DD>.h5`` files, reachable from every
        executor (unless ``local``).
    seq_len : int
        Windows per sequence: 42 for 7 minutes, 54 for 9 (:func:`windows_for`).
    local : bool, default False
        Read the files on the driver (for small data) instead of on the executors.
    num_partitions : int, optional
        Partitions of the result when reading on executors; by default one per file, so each file is
        one task.

    Returns
    -------
    pyspark.sql.DataFrame
        Columns as in :data:`SCHEMA`.
    """
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
        raise InvalidParamError(f"seq_len must be an int >= 1 (windows per sequence). Received: {seq_len!r}.")
    urls = list_day_files(root)
    if local:
        table = load_table(root, seq_len)
        if int(spark.version.split(".")[0]) >= 4:
            return spark.createDataFrame(table, schema=SCHEMA)
        # Spark 3.5 takes no Arrow table: rows (this path is for small data)
        return spark.createDataFrame(table.to_pylist(), schema=SCHEMA)
    # the executors need this module's code but may not have the examples folder: ship it by value
    from pyspark import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    paths = spark.sparkContext.parallelize([(u,) for u in urls], num_partitions or len(urls)).toDF(
        "path string"
    )
    return paths.mapInArrow(lambda batches: _read_paths(batches, seq_len), SCHEMA)
