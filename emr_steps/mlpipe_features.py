"""What mlpipe's EMR feature driver does around a workload's feature function: the contract check, the
splits, the training statistics, and the shard columns. Pure DataFrame functions, no Python UDFs.

A workload's feature module (its `[features] module`, shipped in its code package on `--py-files`) has:

- `NUMERIC_FEATURES`: the names of its numeric features, in order;
- `CATEGORICAL_FEATURES`: a mapping from each categorical feature's name to its number of buckets;
- `features(records)`: the curated (or raw) records in, one row per record out, with the id column, the
  label column when the records have it, the time column when the split is by time, each numeric feature
  (a number) and each categorical feature (an integer bucket in [0, buckets)).

Shard columns: the id (string), the label, `num_<name>` (float32, standardized with the training split's
mean and standard deviation) and `cat_<name>` (int) for each feature.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

FORMAT = "mlpipe.features.v1"
SPLITS = ("train", "validation", "test")


class ContractError(ValueError):
    """The workload's feature module does not follow the contract; the message says how."""


@dataclass(frozen=True)
class FeatureModule:
    module: ModuleType
    numeric: tuple[str, ...]
    categorical: dict[str, int]

    def features(self, records: Any) -> Any:
        return self.module.features(records)

    @property
    def numeric_columns(self) -> list[str]:
        return [f"num_{n}" for n in self.numeric]

    @property
    def categorical_columns(self) -> list[dict[str, Any]]:
        return [{"name": f"cat_{n}", "buckets": b} for n, b in self.categorical.items()]


def load_module(name: str) -> FeatureModule:
    """The workload's feature module, checked for the contract's names."""
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise ContractError(
            f"--workload-module {name}: cannot import it ({exc}); ship it on --py-files"
        ) from None
    numeric = getattr(module, "NUMERIC_FEATURES", None)
    categorical = getattr(module, "CATEGORICAL_FEATURES", {})
    if not callable(getattr(module, "features", None)) or not isinstance(numeric, tuple | list):
        raise ContractError(f"--workload-module {name}: it needs NUMERIC_FEATURES and features(records)")
    if not isinstance(categorical, Mapping) or not all(
        isinstance(b, int) and not isinstance(b, bool) and b >= 1 for b in categorical.values()
    ):
        raise ContractError(f"{name}.CATEGORICAL_FEATURES must map each name to a number of buckets (>= 1)")
    if not numeric and not categorical:
        raise ContractError(f"{name}: NUMERIC_FEATURES and CATEGORICAL_FEATURES are both empty")
    return FeatureModule(module, tuple(numeric), dict(categorical))


def check_columns(df: Any, module: FeatureModule, needed: list[str]) -> None:
    """`features` returned every column the driver reads."""
    missing = [c for c in (*needed, *module.numeric, *module.categorical) if c not in df.columns]
    if missing:
        raise ContractError(f"{module.module.__name__}.features returned no column {missing[0]!r}")


def time_split(time_column: str, train_end: Any, validation_end: Any) -> Any:
    """`train` before `train_end`, `validation` before `validation_end`, `test` after."""
    from pyspark.sql import functions as F

    t = F.col(time_column)
    return (
        F.when(t < F.lit(train_end), "train").when(t < F.lit(validation_end), "validation").otherwise("test")
    )


def ratio_split(id_column: str, validation: float, test: float, seed: int) -> Any:
    """A seeded hash of the id, so that a row keeps its split from one run to the next."""
    from pyspark.sql import functions as F

    u = F.pmod(F.xxhash64(F.lit(seed), F.col(id_column).cast("string")), F.lit(1_000_000)) / 1_000_000.0
    return F.when(u < validation, "validation").when(u < validation + test, "test").otherwise("train")


def fit_statistics(rows: Any, numeric: tuple[str, ...]) -> tuple[dict[str, dict[str, float]], dict[str, int]]:
    """Mean and standard deviation of each numeric feature over the `train` rows, and rows per split.

    One aggregation pass over `rows` (which has a `split` column).
    """
    from pyspark.sql import functions as F

    train = F.col("split") == "train"
    aggs = []
    for i, name in enumerate(numeric):
        value = F.when(train, F.col(name))
        aggs += [F.avg(value).alias(f"m{i}"), F.stddev_pop(value).alias(f"s{i}")]
    aggs += [F.count(F.when(F.col("split") == s, 1)).alias(f"rows__{s}") for s in SPLITS]
    row = rows.agg(*aggs).first()
    stats = {}
    for i, name in enumerate(numeric):
        mean, std = row[f"m{i}"], row[f"s{i}"]
        stats[name] = {
            "mean": float(mean) if mean is not None else 0.0,
            "std": float(std) if std is not None and std > 1e-12 else 1.0,  # constant: centre only
        }
    return stats, {s: int(row[f"rows__{s}"]) for s in SPLITS}


def shard_columns(
    rows: Any,
    module: FeatureModule,
    statistics: Mapping[str, Mapping[str, float]],
    *,
    id_column: str,
    label_column: str | None,
) -> Any:
    """The shard columns: id, label (when given), standardized float32 numerics, int categoricals."""
    from pyspark.sql import functions as F

    missing = [n for n in module.numeric if n not in statistics]
    if missing:
        raise ContractError(f"the statistics lack numeric feature(s): {', '.join(missing)}")
    numerics = [
        ((F.col(n) - statistics[n]["mean"]) / statistics[n]["std"]).cast("float").alias(f"num_{n}")
        for n in module.numeric
    ]
    categoricals = [F.col(n).cast("int").alias(f"cat_{n}") for n in module.categorical]
    label = [F.col(label_column)] if label_column else []
    return rows.select(F.col(id_column).cast("string").alias(id_column), *label, *numerics, *categoricals)
