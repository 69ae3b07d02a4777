"""A search's records as tables: the history (one row per model and epoch, pandas or Spark) and the
leaderboard (one row per model).

Each history row holds the model id, the epoch, the model's final status, its parameters (``param_<name>``),
every training and validation metric of that epoch, the rows and seconds it took, and whether it is
the model's best epoch. Models that finished no epoch have no row (the leaderboard lists them).
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from cerebro_spark.driver import SearchResult
from cerebro_spark.errors import InvalidParamError
from cerebro_spark.search.space import flatten_params

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

logger = logging.getLogger(__name__)

#: Columns of every history table, before the parameters and metrics.
KEY_COLUMNS = ("model_id", "epoch", "status")
#: Columns after the metrics.
TAIL_COLUMNS = ("train_rows", "val_rows", "train_seconds", "finished_at", "is_best_epoch")


def history_columns(result: SearchResult) -> list[str]:
    """The columns of :func:`history_rows`, in order: keys, ``param_*``, metrics, bookkeeping.

    Parameters
    ----------
    result : SearchResult
        A search's records.

    Returns
    -------
    list of str
        Parameters in the order models first name them; training metrics (sorted) before
        validation metrics (``val_``, sorted).
    """
    params: dict[str, None] = {}
    metrics: set[str] = set()
    for model in result.models.values():
        params.update(dict.fromkeys(f"param_{k}" for k in flatten_params(model.params)))
        for record in model.history:
            metrics.update(record.metrics)
    ordered = sorted(metrics, key=lambda name: (name.startswith("val_"), name))
    return [*KEY_COLUMNS, *params, *ordered, *TAIL_COLUMNS]


def history_rows(result: SearchResult) -> list[dict[str, Any]]:
    """One dict per (model, epoch), with every column of :func:`history_columns`.

    A metric a model did not report in an epoch is ``nan``; a parameter a model does not have is
    ``None``. Rows come in the order models were added, then by epoch.

    Parameters
    ----------
    result : SearchResult
        A search's records.

    Returns
    -------
    list of dict
    """
    columns = history_columns(result)
    rows = []
    for model in result.models.values():
        for record in model.history:
            row: dict[str, Any] = {"model_id": model.model_id, "epoch": record.epoch, "status": model.status}
            row.update({f"param_{k}": v for k, v in flatten_params(model.params).items()})
            row.update(record.metrics)
            row.update(
                train_rows=record.train_rows,
                val_rows=record.val_rows,
                train_seconds=record.train_seconds,
                finished_at=record.finished_at,
                is_best_epoch=record.epoch == model.best_epoch,
            )
            rows.append({c: row.get(c, None if c.startswith("param_") else math.nan) for c in columns})
    return rows


def history_frame(result: SearchResult) -> pd.DataFrame:
    """The history table as a pandas DataFrame (see :func:`history_rows`).

    Parameters
    ----------
    result : SearchResult
        A search's records.

    Returns
    -------
    pandas.DataFrame
        One row per (model, epoch); columns as :func:`history_columns` (also when empty).

    Examples
    --------
    >>> history_frame(model_selection.result)  # doctest: +SKIP
    """
    import pandas as pd

    return pd.DataFrame(history_rows(result), columns=history_columns(result))


def leaderboard_frame(result: SearchResult) -> pd.DataFrame:
    """One row per model, best first: id, status, epochs, best epoch, its metrics and ``param_*``.

    Parameters
    ----------
    result : SearchResult
        A search's records.

    Returns
    -------
    pandas.DataFrame
        Sorted by the evaluation metric in the search's direction; models without an epoch last.
    """
    import pandas as pd

    rows = []
    for m in result.models.values():
        best = m.best_metrics()
        rows.append(
            {
                "model_id": m.model_id,
                "status": m.status,
                "epochs": m.epochs,
                "best_epoch": m.best_epoch,
                result.metric: best.get(result.metric, math.nan),
                **{k: v for k, v in sorted(best.items()) if k != result.metric},
                **{f"param_{k}": v for k, v in flatten_params(m.params).items()},
            }
        )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    ascending = result.mode == "min"
    return frame.sort_values(
        result.metric, ascending=ascending, kind="stable", na_position="last"
    ).reset_index(drop=True)


def history_spark_frame(result: SearchResult, spark: SparkSession) -> DataFrame:
    """The history table as a Spark DataFrame with an explicit schema.

    Parameters whose values mix types no Spark type holds (lists, objects) become strings.

    Parameters
    ----------
    result : SearchResult
        A search's records.
    spark : SparkSession
        The session that creates the DataFrame.

    Returns
    -------
    pyspark.sql.DataFrame
        The rows of :func:`history_rows`.

    Raises
    ------
    TypeError
        If ``spark`` is not a SparkSession.
    """
    from pyspark.sql import SparkSession
    from pyspark.sql import types as T

    if not isinstance(spark, SparkSession):
        raise InvalidParamError(
            f"get_history_spark_df needs a SparkSession. Received: spark={type(spark).__name__}"
        )
    columns, rows = history_columns(result), history_rows(result)
    fields, converters = [], []
    for column in columns:
        spark_type, convert = _column_type(column, [row[column] for row in rows], T)
        fields.append(T.StructField(column, spark_type, nullable=True))
        converters.append(convert)
    data = [tuple(conv(row[c]) for c, conv in zip(columns, converters, strict=True)) for row in rows]
    return spark.createDataFrame(data, schema=T.StructType(fields))


def _column_type(column: str, values: list[Any], T: Any) -> tuple[Any, Any]:
    """The Spark type of a column and a function converting each value to it."""
    if column in ("model_id", "status"):
        return T.StringType(), _identity
    if column in ("epoch", "train_rows", "val_rows"):
        return T.LongType(), _identity
    if column == "is_best_epoch":
        return T.BooleanType(), _identity
    present = [v for v in values if v is not None]
    if not column.startswith("param_"):  # metrics, seconds, times
        return T.DoubleType(), _to_float
    if present and all(isinstance(v, bool) for v in present):
        return T.BooleanType(), _identity
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return T.LongType(), _identity
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return T.DoubleType(), _to_float
    if present and all(isinstance(v, str) for v in present):
        return T.StringType(), _identity
    if present:
        logger.debug("history column %s has mixed values; stored as strings", column)
    return T.StringType(), _to_str


def _identity(value: Any) -> Any:
    return value


def _to_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _to_str(value: Any) -> str | None:
    return None if value is None else (value if isinstance(value, str) else repr(value))
