"""Feature engineering for the reference conversion workload: pure DataFrame functions, no Python UDFs.

Shared by `build_features.py` (training shards) and `inference_features.py` (new data, training
statistics). The stack ships this folder as a zip on `--py-files`; the module name is unique so that it
cannot clash with other code imported in the same process.

Features of an event, all computed from curated events (`event_id`, `ts`, `user_id`, `item_id`, `device`,
`country`, `category`, `price`, `position`, `discount`, `label`):

- history of the user and of the item over windows of 1 day, 7 days and all time: event counts,
  conversions, smoothed conversion rates, hours since the user's previous event. Every window ends
  strictly before the event's own timestamp (`rangeBetween(-window, -1)` on microseconds), so an event
  never sees itself, a later event, or an event at the same instant: there is no label leakage.
- the event's own fields: log price, log position, discount (0 when absent) and whether there was one,
  hour of day as sine and cosine.
- hashed categoricals: `pmod(xxhash64(name, value), buckets)` for device, country, category, user, item and
  device x category.

Numeric features are standardized with the mean and standard deviation of the training split only.
"""

from __future__ import annotations

import math
from typing import Any

FORMAT = "mlpipe.features.v1"
ID_COLUMN = "event_id"
LABEL_COLUMN = "label"
SPLITS = ("train", "validation", "test")

DAY_US = 86_400_000_000
NO_HISTORY_HOURS = 24.0 * 30  # hours since the previous event, for a user's first event
SMOOTHING_EVENTS = 10.0  # conversion rates are (conversions + 1) / (events + 10): prior rate 0.1

# (feature name, buckets): the output column is `cat_<name>` with an integer bucket in [0, buckets).
CATEGORICAL_FEATURES: tuple[tuple[str, int], ...] = (
    ("device", 8),
    ("country", 64),
    ("category", 64),
    ("device_x_category", 256),
    ("user_id", 1 << 16),
    ("item_id", 1 << 14),
)
# Raw numeric features in output order; the output column is `num_<name>`, standardized.
NUMERIC_FEATURES: tuple[str, ...] = (
    "log_price",
    "log_position",
    "discount",
    "has_discount",
    "hour_sin",
    "hour_cos",
    "user_events_1d",
    "user_events_7d",
    "user_events_all",
    "user_ctr_7d",
    "user_ctr_all",
    "user_log_hours_since_last",
    "user_is_new",
    "item_events_1d",
    "item_events_7d",
    "item_events_all",
    "item_ctr_7d",
    "item_ctr_all",
)


def numeric_columns() -> list[str]:
    return [f"num_{n}" for n in NUMERIC_FEATURES]


def categorical_columns() -> list[str]:
    return [f"cat_{n}" for n, _ in CATEGORICAL_FEATURES]


def _history(events: Any, key: str, prefix: str, *, with_recency: bool) -> Any:
    """Counts and conversions of `key`'s events strictly before each event, over 1d, 7d and all time.

    A sliding RANGE frame makes Spark re-aggregate the whole frame for every row (quadratic for a busy
    user), so each window is the difference of two running totals, which Spark computes incrementally:
    events in [t - w, t - 1us] = events in (-inf, t - 1us] - events in (-inf, t - w - 1us].
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    base = Window.partitionBy(key).orderBy("_ts_us")

    def upto(offset: int) -> Any:
        return base.rangeBetween(Window.unboundedPreceding, offset)

    before, before_1d, before_7d = upto(-1), upto(-DAY_US - 1), upto(-7 * DAY_US - 1)
    label = F.col(LABEL_COLUMN).cast("double")

    def count(frame: Any) -> Any:
        return F.count(F.lit(1)).over(frame)

    def converted(frame: Any) -> Any:
        return F.coalesce(F.sum(label).over(frame), F.lit(0.0))

    columns = {
        f"_{prefix}_n1": count(before) - count(before_1d),
        f"_{prefix}_n7": count(before) - count(before_7d),
        f"_{prefix}_c7": converted(before) - converted(before_7d),
        f"_{prefix}_n": count(before),
        f"_{prefix}_c": converted(before),
    }
    if with_recency:
        columns[f"_{prefix}_last"] = F.max("_ts_us").over(before)
    return events.withColumns(columns)


def raw_features(events: Any) -> Any:
    """Every raw (unstandardized) numeric feature and every hashed categorical of each event.

    Keeps `event_id`, `ts` and `label`. Two shuffles: one by user, one by item.
    """
    from pyspark.sql import functions as F

    df = events.withColumn("_ts_us", F.unix_micros("ts"))
    df = _history(df, "user_id", "u", with_recency=True)
    df = _history(df, "item_id", "i", with_recency=False)

    def log1p(name: str) -> Any:
        return F.log1p(F.col(name).cast("double"))

    def ctr(conversions: str, events_: str) -> Any:
        return (F.col(conversions) + 1.0) / (F.col(events_).cast("double") + SMOOTHING_EVENTS)

    hours = (F.col("_ts_us") - F.col("_u_last")) / 3.6e9
    hour_angle = (F.hour("ts") + F.minute("ts") / 60.0) * (2 * math.pi / 24.0)
    raw = {
        "log_price": F.log1p(F.col("price")),
        "log_position": F.log(F.col("position").cast("double")),
        "discount": F.coalesce(F.col("discount"), F.lit(0.0)),
        "has_discount": F.col("discount").isNotNull().cast("double"),
        "hour_sin": F.sin(hour_angle),
        "hour_cos": F.cos(hour_angle),
        "user_events_1d": log1p("_u_n1"),
        "user_events_7d": log1p("_u_n7"),
        "user_events_all": log1p("_u_n"),
        "user_ctr_7d": ctr("_u_c7", "_u_n7"),
        "user_ctr_all": ctr("_u_c", "_u_n"),
        "user_log_hours_since_last": F.log1p(F.coalesce(hours, F.lit(NO_HISTORY_HOURS))),
        "user_is_new": F.col("_u_last").isNull().cast("double"),
        "item_events_1d": log1p("_i_n1"),
        "item_events_7d": log1p("_i_n7"),
        "item_events_all": log1p("_i_n"),
        "item_ctr_7d": ctr("_i_c7", "_i_n7"),
        "item_ctr_all": ctr("_i_c", "_i_n"),
    }
    values = {
        "device": F.col("device"),
        "country": F.col("country"),
        "category": F.col("category"),
        "device_x_category": F.concat_ws("|", "device", "category"),
        "user_id": F.col("user_id"),
        "item_id": F.col("item_id"),
    }
    hashed = {
        f"cat_{name}": F.pmod(F.xxhash64(F.lit(name), values[name]), F.lit(buckets)).cast("int")
        for name, buckets in CATEGORICAL_FEATURES
    }
    return df.select(
        ID_COLUMN,
        "ts",
        LABEL_COLUMN,
        *(raw[n].cast("double").alias(n) for n in NUMERIC_FEATURES),
        *(hashed[c].alias(c) for c in categorical_columns()),
    )


def split_column(train_end: Any, validation_end: Any) -> Any:
    """`train` before `train_end`, `validation` before `validation_end`, `test` after (timestamps)."""
    from pyspark.sql import functions as F

    return (
        F.when(F.col("ts") < F.lit(train_end), "train")
        .when(F.col("ts") < F.lit(validation_end), "validation")
        .otherwise("test")
    )


def fit_statistics(features: Any) -> tuple[dict[str, dict[str, float]], dict[str, int]]:
    """Mean and standard deviation of each numeric feature over the `train` rows, and rows per split.

    One aggregation pass over `features` (which has a `split` column).
    """
    from pyspark.sql import functions as F

    train = F.col("split") == "train"
    aggs = []
    for name in NUMERIC_FEATURES:
        value = F.when(train, F.col(name))
        aggs += [F.avg(value).alias(f"{name}__mean"), F.stddev_pop(value).alias(f"{name}__std")]
    aggs += [F.count(F.when(F.col("split") == s, 1)).alias(f"rows__{s}") for s in SPLITS]
    row = features.agg(*aggs).first()
    stats = {}
    for name in NUMERIC_FEATURES:
        mean, std = row[f"{name}__mean"], row[f"{name}__std"]
        stats[name] = {
            "mean": float(mean) if mean is not None else 0.0,
            "std": float(std) if std is not None and std > 1e-12 else 1.0,  # constant: centre only
        }
    return stats, {s: int(row[f"rows__{s}"]) for s in SPLITS}


def standardize(features: Any, statistics: dict[str, dict[str, float]], *, with_label: bool = True) -> Any:
    """The shard columns: id, label (training only), standardized float32 numerics, int categoricals."""
    from pyspark.sql import functions as F

    missing = [n for n in NUMERIC_FEATURES if n not in statistics]
    if missing:
        raise ValueError(f"statistics lack numeric feature(s): {', '.join(missing)}")
    numerics = [
        ((F.col(n) - statistics[n]["mean"]) / statistics[n]["std"]).cast("float").alias(f"num_{n}")
        for n in NUMERIC_FEATURES
    ]
    label = [F.col(LABEL_COLUMN).cast("int").alias(LABEL_COLUMN)] if with_label else []
    return features.select(
        F.col(ID_COLUMN).cast("string"), *label, *numerics, *(F.col(c) for c in categorical_columns())
    )
