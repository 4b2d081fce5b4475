"""The clickstream workload's feature stage: pure DataFrame functions, no Python UDFs.

mlpipe's EMR driver (emr_steps/build_features.py for training, emr_steps/inference_features.py for new data)
calls `features` on the curated events, splits the rows by time, standardizes NUMERIC_FEATURES with the
training split's statistics and writes the shards and the feature manifest.

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
"""

from __future__ import annotations

import math
from typing import Any

DAY_US = 86_400_000_000
NO_HISTORY_HOURS = 24.0 * 30  # hours since the previous event, for a user's first event
SMOOTHING_EVENTS = 10.0  # conversion rates are (conversions + 1) / (events + 10): prior rate 0.1

# Hashed categoricals: name -> buckets (an integer bucket in [0, buckets) of the hashed value).
CATEGORICAL_FEATURES: dict[str, int] = {
    "device": 8,
    "country": 64,
    "category": 64,
    "device_x_category": 256,
    "user_id": 1 << 16,
    "item_id": 1 << 14,
}
# Numeric features in output order; mlpipe standardizes them with the training split's statistics.
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
    label = F.col("label").cast("double")

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


def features(events: Any) -> Any:
    """Every numeric feature (unstandardized) and every hashed categorical of each event, with `event_id`,
    `ts` and `label` (when the events have one). Two shuffles: one by user, one by item."""
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
    hashed = [
        F.pmod(F.xxhash64(F.lit(name), values[name]), F.lit(buckets)).cast("int").alias(name)
        for name, buckets in CATEGORICAL_FEATURES.items()
    ]
    label = ["label"] if "label" in events.columns else []
    return df.select(
        "event_id", "ts", *label, *(raw[n].cast("double").alias(n) for n in NUMERIC_FEATURES), *hashed
    )
