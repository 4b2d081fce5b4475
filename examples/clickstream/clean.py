"""The clickstream workload's clean stage: the raw event schema and the rules that reject a record.

mlpipe's Glue driver (glue_jobs/mlpipe_clean.py) reads the JSON Lines, rejects what is not UTF-8, not JSON,
missing a required field or of the wrong type, then calls `parse`; it does the quarantine, the dedupe by
`event_id`, the `dt` partitions, the commit and the accounting. Native Spark expressions only (no Python
UDFs): Glue runs them in the JVM.
"""

from __future__ import annotations

from typing import Any

# The event's vocabularies and ranges, shared with the generator (a module of this folder: it ships in the
# same code package).
from event_schema import (
    CATEGORIES,
    COUNTRIES,
    DEVICES,
    DISCOUNT_RANGE,
    LABEL_VALUES,
    POSITION_RANGE,
    PRICE_RANGE,
    REQUIRED_FIELDS,
    TS_RANGE,
)

# The raw record: field name and Spark type, in the order the generator writes them.
SCHEMA = (
    "event_id STRING, ts STRING, user_id STRING, item_id STRING, device STRING, country STRING, "
    "category STRING, price DOUBLE, position BIGINT, discount DOUBLE, label BIGINT"
)
REQUIRED = REQUIRED_FIELDS  # the driver quarantines a record without one of these as missing_field

ID_PATTERNS = {
    "event_id": r"^[A-Za-z0-9_.:-]{1,128}$",
    "user_id": r"^u[0-9]{1,12}$",
    "item_id": r"^i[0-9]{1,12}$",
}


def parse(records: Any) -> Any:
    """The record's typed columns, the `dt` partition (the UTC date) and the first failing rule's
    `reject_reason` and `reject_field` (null for a valid record), in this order: wrong_type (identifiers),
    bad_timestamp, out_of_range, unknown_category."""
    from pyspark.sql import functions as F

    records = records.withColumn("ts", F.expr("try_cast(ts AS TIMESTAMP)"))  # parsed once: the rules read it
    ts, ts_low, ts_high = (
        F.col("ts"),
        F.lit(TS_RANGE[0]).cast("timestamp"),
        F.lit(TS_RANGE[1]).cast("timestamp"),
    )
    rules: list[tuple[Any, str]] = [
        (~F.col(name).rlike(pattern), f"wrong_type:{name}") for name, pattern in ID_PATTERNS.items()
    ]
    rules.append((ts.isNull() | (ts < ts_low) | (ts >= ts_high), "bad_timestamp:ts"))
    for name, (low, high) in (
        ("price", PRICE_RANGE),
        ("position", POSITION_RANGE),
        ("discount", DISCOUNT_RANGE),
    ):
        rules.append((~F.col(name).between(low, high), f"out_of_range:{name}"))  # NaN is out of range
    rules.append((~F.col("label").isin(*LABEL_VALUES), "out_of_range:label"))
    for name, allowed in (("device", DEVICES), ("country", COUNTRIES), ("category", CATEGORIES)):
        rules.append((~F.col(name).isin(*allowed), f"unknown_category:{name}"))
    # The first failing rule wins: one CASE per six rules under a COALESCE keeps Spark's generated methods
    # small enough for the JIT to compile (one huge CASE runs interpreted, many times slower).
    cases = []
    for group in (rules[i : i + 6] for i in range(0, len(rules), 6)):
        case = F.when(group[0][0], F.lit(group[0][1]))
        for condition, label in group[1:]:
            case = case.when(condition, F.lit(label))
        cases.append(case)
    problem = F.coalesce(*cases)
    return records.withColumns(
        {
            "price": F.col("price").cast("double"),
            "position": F.col("position").cast("int"),
            "label": F.col("label").cast("int"),
            "dt": F.to_date("ts").cast("string"),
            "reject_reason": F.substring_index(problem, ":", 1),
            "reject_field": F.substring_index(problem, ":", -1),
        }
    )
