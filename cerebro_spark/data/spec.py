"""Descriptions of prepared data: plain values shared by the driver (prepare) and workers (read).

Nothing here imports Spark, pyarrow or Keras.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from cerebro_spark.errors import DataError

#: Version of the prepared-data metadata format (``_metadata.json``).
METADATA_FORMAT = 1


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """One feature or label column as stored: its name, numpy dtype name and per-row shape.

    ``shape`` is ``()`` for a scalar column, ``(n,)`` for an array or vector of length ``n``,
    ``(a, b)`` for an array of arrays. ``low`` and ``high`` are the smallest and largest value of a
    label column (``fit`` checks class indices against the model's outputs with them); None for features,
    for arrays of arrays, and in data prepared by releases that did not record them.
    """

    name: str
    dtype: str
    shape: tuple[int, ...] = ()
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True, slots=True)
class PartitionSpec:
    """One Parquet file of prepared data: its Store key and row count."""

    key: str
    rows: int


@dataclass(frozen=True, slots=True)
class DatasetSpec:
    """Prepared data in a Store: P training partitions and P validation partitions (maybe empty).

    Written as ``<root>/_metadata.json`` by data preparation; its presence marks a complete preparation.
    ``weight`` is the stored sample-weight column, if any, and ``train_weight`` / ``val_weight`` the sums
    of the weights of each split.
    """

    fingerprint: str
    root: str
    features: tuple[ColumnSpec, ...]
    labels: tuple[ColumnSpec, ...]
    train: tuple[PartitionSpec, ...]
    val: tuple[PartitionSpec, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    format: int = METADATA_FORMAT
    weight: ColumnSpec | None = None
    train_weight: float = 0.0
    val_weight: float = 0.0
    #: How workers read the partitions: "pyarrow" or "petastorm" (a choice of the run, set by ``fit``).
    reader: str = "pyarrow"

    @property
    def num_partitions(self) -> int:
        """Number of training partitions (one per worker)."""
        return len(self.train)

    @property
    def train_rows(self) -> int:
        return sum(p.rows for p in self.train)

    @property
    def val_rows(self) -> int:
        return sum(p.rows for p in self.val)

    @property
    def has_validation(self) -> bool:
        return self.val_rows > 0

    @property
    def metadata_key(self) -> str:
        return f"{self.root}/_metadata.json"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the content of ``_metadata.json``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DatasetSpec:
        """The inverse of :meth:`to_dict`. Raises ``DataError`` for a newer metadata format."""
        fmt = int(d.get("format", METADATA_FORMAT))
        if fmt > METADATA_FORMAT:
            raise DataError(
                f"Prepared data at {d.get('root')!r} has metadata format {fmt}, newer than this "
                f"cerebro_spark understands ({METADATA_FORMAT}). Upgrade cerebro_spark or prepare the data again."
            )

        def cols(items: list[dict[str, Any]]) -> tuple[ColumnSpec, ...]:
            return tuple(
                ColumnSpec(c["name"], c["dtype"], tuple(c["shape"]), c.get("low"), c.get("high"))
                for c in items
            )

        def parts(items: list[dict[str, Any]]) -> tuple[PartitionSpec, ...]:
            return tuple(PartitionSpec(p["key"], int(p["rows"])) for p in items)

        return cls(
            fingerprint=d["fingerprint"],
            root=d["root"],
            features=cols(d["features"]),
            labels=cols(d["labels"]),
            train=parts(d["train"]),
            val=parts(d.get("val", [])),
            params=dict(d.get("params", {})),
            format=fmt,
            weight=cols([d["weight"]])[0] if d.get("weight") else None,
            train_weight=float(d.get("train_weight", 0.0)),
            val_weight=float(d.get("val_weight", 0.0)),
            reader=str(d.get("reader", "pyarrow")),
        )


def match_columns(model_names: list[str], columns: list[str], param: str, kind: str) -> list[int]:
    """For each model input (or output), the index of its column in ``columns``.

    By name when every model ``kind`` name is one of ``columns`` (Keras input or output layer names equal
    to column names, in any order); else by position (``columns[i]`` feeds ``kind`` ``i``), in which case
    a column named like another ``kind`` than the one at its position is an error, not a silent swap.

    Raises
    ------
    DataError
        When the numbers differ, or the names contradict the positions.
    """
    if len(model_names) != len(columns):
        raise DataError(
            f"The model has {len(model_names)} {kind}(s) {model_names} but {param} names {len(columns)} "
            f"column(s): {columns}. Expected one column per model {kind}."
        )
    if set(model_names) == set(columns):
        return [columns.index(name) for name in model_names]
    crossed = [
        (c, model_names.index(c), i)
        for i, c in enumerate(columns)
        if c in model_names and model_names[i] != c
    ]
    if crossed:
        column, at, position = crossed[0]
        raise DataError(
            f"{param} {columns} match the model's {kind} names {model_names} only in part: column "
            f"{column!r} is at position {position} but the {kind} of that name is at position {at}. "
            f"Name every {kind} after its column (mapping by name), or list the columns in the model's "
            f"{kind} order (mapping by position)."
        )
    return list(range(len(columns)))
