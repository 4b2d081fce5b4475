"""A team's whole Glue script in place of mlpipe's clean driver: it keeps the driver's contract.

It takes the run's `--input`, `--output`, `--quarantine` and `--report`, and `[raw]`'s `--csv-delimiter` (Glue
adds its own arguments, which it ignores), writes curated Parquet, quarantines the lines it cannot parse with their reason, drops repeated
ids, and writes the `mlpipe.clean_report.v1` report last.
"""

from __future__ import annotations

import argparse
import json
import re

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

COLUMNS = ("id", "a", "b", "grp", "label")


def write_text(spark: SparkSession, uri: str, text: str) -> None:
    """One object, through Hadoop's FileSystem: a local path here, s3:// in Glue."""
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    stream = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).create(path, True)
    try:
        stream.write(bytearray(text.encode()))
    finally:
        stream.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("input", "output", "quarantine", "report"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--csv-delimiter", default=",")
    args, _glue_arguments = parser.parse_known_args()
    header = args.csv_delimiter.join(COLUMNS)
    spark = SparkSession.builder.getOrCreate()

    lines = spark.read.option("recursiveFileLookup", "true").text(args.input).where(F.col("value") != header)
    fields = F.split("value", re.escape(args.csv_delimiter))
    parsed = lines.select(
        "value",
        fields[0].alias("id"),
        fields[1].cast("double").alias("a"),
        fields[2].cast("double").alias("b"),
        fields[3].alias("grp"),
        fields[4].cast("int").alias("label"),
        F.size(fields).alias("n"),
    ).cache()
    valid = (F.col("n") == 5) & F.col("a").isNotNull() & F.col("b").isNotNull() & F.col("label").isin(0, 1)
    rejected = parsed.where(~valid).select(F.lit("unparsable").alias("reason"), F.col("value").alias("line"))
    good = parsed.where(valid).drop("value", "n")
    curated = good.dropDuplicates(["id"])

    rejected.write.mode("overwrite").parquet(args.quarantine)
    curated.write.mode("overwrite").parquet(args.output)
    rows_in, rows_good = parsed.count(), good.count()
    counts = {
        "rows_in": rows_in,
        "rows_curated": spark.read.parquet(args.output).count(),  # counted back from what was written
        "rows_quarantined": rows_in - rows_good,
        "duplicates_removed": rows_good - curated.count(),
    }
    if (
        counts["rows_in"]
        != counts["rows_curated"] + counts["rows_quarantined"] + counts["duplicates_removed"]
    ):
        raise RuntimeError(f"the accounting does not add up: {counts}")
    write_text(spark, args.report, json.dumps({"format": "mlpipe.clean_report.v1", **counts}) + "\n")


if __name__ == "__main__":
    main()
