"""The regression workload's clean stage: the raw reading's schema and the rules that reject a reading.

mlpipe's Glue driver (glue_jobs/mlpipe_clean.py) reads the gzipped CSV (`--format csv --csv-header true`),
rejects what is not UTF-8, not CSV (`malformed_csv`), missing a required field (`missing_field`: absent or
empty) or not of its SCHEMA type (`wrong_type`: an unparseable number), then calls `parse`; it does the
quarantine, the dedupe by `reading_id`, the `month` partitions, the commit and the accounting. Native Spark
expressions only (no Python UDFs).
"""

from __future__ import annotations

from typing import Any

# The raw record, in the order of the CSV header that generate.py writes.
SCHEMA = (
    "reading_id STRING, ts STRING, site STRING, building_type STRING, floor_area DOUBLE, occupancy INT, "
    "temperature_c DOUBLE, log_load DOUBLE"
)
# Every field is required (the driver's default): the label too, as in the clickstream example.

SITES = tuple(f"site-{i:02d}" for i in range(1, 13))
BUILDING_TYPES = ("residential", "office", "retail", "industrial")
TS_RANGE = ("2020-01-01T00:00:00Z", "2030-01-01T00:00:00Z")
FLOOR_AREA_RANGE = (0.0, 1_000_000.0)  # m2, exclusive of 0
OCCUPANCY_RANGE = (0, 5_000)
TEMPERATURE_RANGE = (-50.0, 60.0)
LOG_LOAD_RANGE = (-20.0, 40.0)
ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"


def parse(records: Any) -> Any:
    """The typed reading plus `month` (the partition, "YYYY-MM" of `ts` in UTC), and the first failing
    rule's `reject_reason` and `reject_field` (null for a valid reading), in this order: wrong_type
    (reading_id), bad_timestamp, out_of_range (floor_area, occupancy, temperature_c, log_load),
    unknown_category (site, building_type)."""
    from pyspark.sql import functions as F

    records = records.withColumn("ts", F.expr("try_cast(ts AS TIMESTAMP)"))  # parsed once: the rules read it
    ts = F.col("ts")
    area = F.col("floor_area")
    rules: list[tuple[Any, str]] = [
        (~F.col("reading_id").rlike(ID_PATTERN), "wrong_type:reading_id"),
        (
            ts.isNull()
            | (ts < F.lit(TS_RANGE[0]).cast("timestamp"))
            | (ts >= F.lit(TS_RANGE[1]).cast("timestamp")),
            "bad_timestamp:ts",
        ),
        # NaN compares greater than every number in Spark, so NaN and Infinity fail these checks too.
        (~((area > FLOOR_AREA_RANGE[0]) & (area <= FLOOR_AREA_RANGE[1])), "out_of_range:floor_area"),
        (~F.col("occupancy").between(*OCCUPANCY_RANGE), "out_of_range:occupancy"),
        (~F.col("temperature_c").between(*TEMPERATURE_RANGE), "out_of_range:temperature_c"),
        (~F.col("log_load").between(*LOG_LOAD_RANGE), "out_of_range:log_load"),
        (~F.col("site").isin(*SITES), "unknown_category:site"),
        (~F.col("building_type").isin(*BUILDING_TYPES), "unknown_category:building_type"),
    ]
    # The first failing rule wins; one CASE per six rules under a COALESCE keeps the generated code small
    # enough for the JIT (as in the clickstream example).
    cases = []
    for group in (rules[i : i + 6] for i in range(0, len(rules), 6)):
        case = F.when(group[0][0], F.lit(group[0][1]))
        for condition, label in group[1:]:
            case = case.when(condition, F.lit(label))
        cases.append(case)
    problem = F.coalesce(*cases)
    return records.withColumns(
        {
            "month": F.date_format("ts", "yyyy-MM"),
            "reject_reason": F.substring_index(problem, ":", 1),
            "reject_field": F.substring_index(problem, ":", -1),
        }
    )
