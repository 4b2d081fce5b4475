"""A team's whole Spark script for the training features, in place of mlpipe's feature driver.

It takes the step's `--input` (curated Parquet), `--output`, `--manifest` and `--run-id` (and ignores the rest,
such as `--target-shard-mb`), splits the rows by a hash of the id, and writes the shards, then the
`mlpipe.features.v1` manifest last, with mlpipe's step library (`mlpipe_emr_io`, on the step's --py-files).
"""

from __future__ import annotations

import argparse

import feature_logic
import mlpipe_emr_io as io
from pyspark.sql import functions as F

SPLITS = ("train", "validation", "test")


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("input", "output", "manifest", "run-id"):
        parser.add_argument(f"--{name}", required=True)
    args, _ = parser.parse_known_args()
    spark = io.spark_session("scripted-features")
    records = io.read_records(spark, args.input)
    u = F.pmod(F.xxhash64("id"), F.lit(10))
    split = records.withColumn(
        "split", F.when(u == 0, "validation").when(u == 1, "test").otherwise("train")
    ).cache()
    stats = feature_logic.statistics(split.where(F.col("split") == "train"))
    output = io.normalize(args.output)
    splits = {}
    for name in SPLITS:
        rows = split.where(F.col("split") == name)
        count = rows.count()
        shards = io.write_shards(
            spark,
            feature_logic.shard_columns(rows, stats, label=True),
            rows=count,
            folder=io.join(output, name),
            staging=io.join(output, f"_staging-{name}"),
            target_bytes=64 * 1024 * 1024,
            bytes_per_row=40.0,
        )
        splits[name] = {"rows": count, "shards": shards}
    io.write_json(spark, io.normalize(args.manifest), feature_logic.manifest(args.run_id, splits, stats))


if __name__ == "__main__":
    main()
