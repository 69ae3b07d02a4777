"""Checks of the parameters and column types of data preparation, and the conversions to stored types.

Everything here looks only at the DataFrame's schema: no Spark job runs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from numbers import Real
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DataType,
    IntegralType,
    NumericType,
    StringType,
    StructType,
    UserDefinedType,
)

from cerebro_spark.errors import DataError, InvalidParamError

logger = logging.getLogger(__name__)

_VECTOR_UDTS = ("org.apache.spark.ml.linalg.VectorUDT", "org.apache.spark.mllib.linalg.VectorUDT")


class Kind(str, Enum):
    """How a column is stored: a scalar, an array, an array of arrays, or a Spark ML vector."""

    SCALAR = "scalar"
    ARRAY = "array"
    NESTED = "nested"
    VECTOR = "vector"


@dataclass(frozen=True, slots=True)
class SourceColumn:
    """A feature or label column of the input DataFrame, as checked against its Spark type."""

    name: str
    role: str  # "feature", "label" or "weight"
    kind: Kind
    spark_type: str
    dtype: str  # the stored numpy dtype: "float32" or "int64"


#: Columns that data preparation adds have names that start with this; user columns may not.
RESERVED_PREFIX = "__cerebro_"


def col(name: str) -> Column:
    """The column ``name`` taken literally (dots and backticks in the name are not parsed)."""
    return F.col("`" + name.replace("`", "``") + "`")


def check_column_lists(feature_columns: Any, label_columns: Any) -> tuple[list[str], list[str]]:
    """Check that both are non-empty lists of distinct column names, with no column in both."""
    features = _check_names("feature_columns", feature_columns)
    labels = _check_names("label_columns", label_columns)
    both = [name for name in features if name in labels]
    if both:
        raise InvalidParamError(
            "A column cannot be both a feature and a label. "
            f"Received: {', '.join(map(repr, both))} in feature_columns and in label_columns."
        )
    return features, labels


def _check_names(param: str, value: Any) -> list[str]:
    expected = f"{param} must be a non-empty list of column names (str)"
    if isinstance(value, str) or not isinstance(value, Sequence) or len(value) == 0:
        hint = f" (use [{value!r}] for one column)" if isinstance(value, str) else ""
        raise InvalidParamError(f"{expected}{hint}. Received: {param}={value!r}.")
    names = list(value)
    if not all(isinstance(name, str) and name for name in names):
        raise InvalidParamError(f"{expected}. Received: {param}={value!r}.")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InvalidParamError(
            f"{param} must not name a column twice. Received: {param}={value!r} "
            f"(repeated: {', '.join(map(repr, repeated))})."
        )
    return names


def normalize_validation(validation: Any) -> float | str | None:
    """``None`` or 0 -> ``None``; a float in (0, 1) -> that float; a non-empty str -> the column name."""
    if validation is None:
        return None
    if isinstance(validation, str) and validation:
        return validation
    if isinstance(validation, Real) and not isinstance(validation, bool):
        if validation == 0:
            return None
        if 0 < float(validation) < 1:
            return float(validation)
    raise InvalidParamError(
        "validation must be None, a fraction in (0, 1) of the rows to hold out, or the name of a boolean "
        f"column that is True on validation rows. Received: validation={validation!r}."
    )


def check_weight_column(weight: Any, features: list[str], labels: list[str]) -> str | None:
    """Check the ``sample_weight_column`` parameter: ``None`` or a column that is no feature or label."""
    if weight is None:
        return None
    if not isinstance(weight, str) or not weight:
        raise InvalidParamError(
            f"sample_weight_column must be None or a column name (str). Received: {weight!r}."
        )
    if weight in features or weight in labels:
        raise InvalidParamError(
            f"sample_weight_column {weight!r} is also a feature or label column. "
            "Expected a column of per-row weights of its own."
        )
    return weight


def resolve_columns(
    schema: StructType, features: list[str], labels: list[str], weight: str | None = None
) -> list[SourceColumn]:
    """Check that every column exists and has a supported type; features, then labels, then the weight."""
    types = {field.name: field.dataType for field in schema.fields}
    wanted = features + labels + ([weight] if weight else [])
    check_reserved(wanted, "(DataFrame.withColumnRenamed)")
    names = [field.name for field in schema.fields]
    ambiguous = [name for name in wanted if names.count(name) > 1]
    if ambiguous:
        raise DataError(
            f"The DataFrame has more than one column named {', '.join(map(repr, ambiguous))} (after a join, "
            "for example), so the name does not say which. Expected one column per name: drop or rename "
            "the others first."
        )
    check_present(wanted, list(types), "the DataFrame")
    columns = [_resolve(name, "feature", types[name]) for name in features] + [
        _resolve(name, "label", types[name]) for name in labels
    ]
    if weight:
        found = _classify(types[weight], allow_bool=False)
        if found is None or found[0] is not Kind.SCALAR:
            raise DataError(
                f"Sample weight column {weight!r} must be numeric, one weight per row. "
                f"Received: {types[weight].simpleString()}."
            )
        columns.append(SourceColumn(weight, "weight", Kind.SCALAR, types[weight].simpleString(), "float32"))
    return columns


def check_reserved(wanted: Sequence[str], how: str = "") -> None:
    """No wanted column may have a name that data preparation keeps for its own columns."""
    reserved = [name for name in wanted if name.startswith(RESERVED_PREFIX)]
    if reserved:
        raise DataError(
            f"Columns {', '.join(map(repr, reserved))} have names that start with {RESERVED_PREFIX!r}, which "
            f"cerebro_spark keeps for the columns it adds while preparing data. Rename them first{' ' + how if how else ''}."
        )


def check_present(wanted: Sequence[str], available: Sequence[str], source: str) -> None:
    """Every wanted column is among ``available`` (those of ``source``, "the DataFrame" or "the data")."""
    missing = [name for name in wanted if name not in available]
    if missing:
        raise DataError(
            f"Columns missing from {source}: {', '.join(map(repr, missing))}. "
            f"Available columns: {', '.join(map(repr, available)) or 'none'}."
        )


def _resolve(name: str, role: str, dtype: DataType) -> SourceColumn:
    allow_bool = role == "label"
    found = _classify(dtype, allow_bool)
    if found is None:
        what = "numeric or boolean" if allow_bool else "numeric"
        numbers = "numbers or booleans" if allow_bool else "numbers"
        hint = ""
        if isinstance(dtype, StringType):
            hint = (
                " Index it first with pyspark.ml.feature.StringIndexer (its double index is a valid label)."
                if role == "label"
                else " Encode it first: pyspark.ml.feature.StringIndexer, then OneHotEncoder or VectorAssembler."
            )
        raise DataError(
            f"{role.capitalize()} column {name!r} must be {what}, an array of {numbers}, an array of arrays "
            f"of {numbers} or a pyspark.ml.linalg vector. Received: {dtype.simpleString()}.{hint}"
        )
    kind, integral = found
    stored = "int64" if role == "label" and integral else "float32"
    return SourceColumn(name, role, kind, dtype.simpleString(), stored)


def _classify(dtype: DataType, allow_bool: bool) -> tuple[Kind, bool] | None:
    """The kind of a supported type and whether its numbers are integral; ``None`` if unsupported."""

    def number(t: DataType) -> bool | None:  # integral?, or None when not a number
        if isinstance(t, NumericType):
            return isinstance(t, IntegralType)
        if allow_bool and isinstance(t, BooleanType):
            return True
        return None

    if (integral := number(dtype)) is not None:
        return Kind.SCALAR, integral
    if isinstance(dtype, UserDefinedType) and dtype.scalaUDT() in _VECTOR_UDTS:
        return Kind.VECTOR, False
    if isinstance(dtype, ArrayType):
        if (integral := number(dtype.elementType)) is not None:
            return Kind.ARRAY, integral
        inner = dtype.elementType
        if isinstance(inner, ArrayType) and (integral := number(inner.elementType)) is not None:
            return Kind.NESTED, integral
    return None


def check_validation_column(schema: StructType, name: str) -> None:
    """Check that the validation column exists and is boolean."""
    types = {field.name: field.dataType for field in schema.fields}
    if name not in types:
        raise DataError(
            f"Validation column {name!r} (validation={name!r}) is missing from the DataFrame. "
            f"Available columns: {', '.join(map(repr, types)) or 'none'}."
        )
    if not isinstance(types[name], BooleanType):
        raise DataError(
            f"Validation column {name!r} must be boolean (True on validation rows). "
            f"Received: {types[name].simpleString()}."
        )


def converted(column: SourceColumn) -> Column:
    """The column cast to its stored type (vectors become float32 arrays), under its own name."""
    from pyspark.ml.functions import vector_to_array

    c = col(column.name)
    element = "float" if column.dtype == "float32" else "bigint"
    if column.kind is Kind.VECTOR:
        # vector_to_array handles dense and sparse vectors (both ml and mllib) but fails on null
        out = F.when(c.isNotNull(), vector_to_array(c, "float32"))
    elif column.kind is Kind.ARRAY:
        out = c.cast(f"array<{element}>")
    elif column.kind is Kind.NESTED:
        out = c.cast(f"array<array<{element}>>")
    else:
        out = c.cast(element)
    return out.alias(column.name)


def with_converted(df: DataFrame, columns: Sequence[SourceColumn], extra: Sequence[Column]) -> DataFrame:
    """``df`` reduced to the converted columns plus ``extra`` (already aliased) columns."""
    return df.select(*[converted(c) for c in columns], *extra)
