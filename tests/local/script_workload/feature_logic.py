"""The features both of this workload's Spark scripts compute, and how they standardize them."""

from __future__ import annotations

from typing import Any

from pyspark.sql import functions as F

NUMERIC = ("a", "b", "a_minus_b")
GROUPS = 8  # buckets of the categorical feature


def shard_columns(records: Any, statistics: dict[str, dict[str, float]], *, label: bool) -> Any:
    """The manifest's shard columns: the id, the label, `num_*` standardized float32, `cat_grp` an int bucket."""
    rows = records.withColumn("a_minus_b", F.col("a") - F.col("b"))
    numerics = [
        ((F.col(n) - statistics[n]["mean"]) / statistics[n]["std"]).cast("float").alias(f"num_{n}")
        for n in NUMERIC
    ]
    bucket = F.pmod(F.xxhash64("grp"), F.lit(GROUPS)).cast("int").alias("cat_grp")
    return rows.select("id", *(["label"] if label else []), *numerics, bucket)


def statistics(train: Any) -> dict[str, dict[str, float]]:
    rows = train.withColumn("a_minus_b", F.col("a") - F.col("b"))
    row = rows.agg(
        *(F.avg(n).alias(f"m_{n}") for n in NUMERIC), *(F.stddev_pop(n).alias(f"s_{n}") for n in NUMERIC)
    ).first()
    return {n: {"mean": float(row[f"m_{n}"]), "std": float(row[f"s_{n}"] or 1.0)} for n in NUMERIC}


def manifest(run_id: str, splits: dict[str, Any], stats: dict[str, dict[str, float]]) -> dict[str, Any]:
    return {
        "format": "mlpipe.features.v1",
        "run_id": run_id,
        "id_column": "id",
        "label_column": "label",
        "numeric_features": [f"num_{n}" for n in NUMERIC],
        "categorical_features": [{"name": "cat_grp", "buckets": GROUPS}],
        "splits": splits,
        "statistics": stats,
    }
