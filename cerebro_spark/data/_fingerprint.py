"""The fingerprint of prepared data: what identifies the input and the parameters of a preparation.

Two preparations with the same fingerprint write the same files, so the second can reuse the first.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from pyspark.sql import DataFrame

from cerebro_spark.data._columns import SourceColumn
from cerebro_spark.data.spec import METADATA_FORMAT

_FINGERPRINT_CHARS = 32  # 128 bits of sha256
# Leaves of a plan whose data the canonical plan text does not describe (it shows only their columns).
_IN_MEMORY_LEAVES = ("LogicalRDD", "LocalRelation", "ExternalRDD", "InMemoryRelation")


def dataset_fingerprint(
    df: DataFrame,
    columns: Sequence[SourceColumn],
    num_partitions: int,
    validation: float | str | None,
    seed: int | None,
) -> str:
    """The fingerprint of prepared data: sha256 over the data's identity and the parameters (hex, 32)."""
    try:
        files = sorted(df.inputFiles())
    except Exception:  # some sources cannot list files; their plan identifies them
        files = []
    document = {
        "format": METADATA_FORMAT,
        "data": _data_identity(df, files),
        "files": files,
        "columns": [[c.name, c.role, c.spark_type] for c in columns],
        "num_partitions": num_partitions,
        "validation": validation,
        "seed": seed,
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:_FINGERPRINT_CHARS]


def _data_identity(df: DataFrame, files: list[str]) -> dict[str, Any]:
    """For file sources, the canonical plan text: stable across sessions, unlike ``semanticHash``, which
    hashes the file format's class identity for them. Otherwise ``semanticHash`` (it covers the rows of
    local data, and is per-session for RDD-based data)."""
    if files:
        plan = _canonical_plan(df)
        if plan is not None and not any(leaf in plan for leaf in _IN_MEMORY_LEAVES):
            return {"plan": plan}
    return {"semantic_hash": df.semanticHash()}


def _canonical_plan(df: DataFrame) -> str | None:
    try:  # classic PySpark only; Spark Connect has no JVM plan here
        return str(df._jdf.queryExecution().analyzed().canonicalized().toString())
    except Exception:
        return None
