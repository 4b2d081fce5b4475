"""A team's whole Spark script for the inference features: the new records, standardized with the statistics
that its training script recorded in the training manifest (`--training-manifest`)."""

from __future__ import annotations

import argparse
import json

import feature_logic
import mlpipe_emr_io as io


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("input", "training-manifest", "output", "manifest"):
        parser.add_argument(f"--{name}", required=True)
    args, _ = parser.parse_known_args()
    spark = io.spark_session("scripted-inference-features")
    training = json.loads(io.read_text(spark, io.normalize(args.training_manifest)))
    records = io.read_records(spark, args.input).cache()
    count = records.count()
    output = io.normalize(args.output)
    shards = io.write_shards(
        spark,
        feature_logic.shard_columns(records, training["statistics"], label=False),
        rows=count,
        folder=output,
        staging=f"{output}_staging",
        target_bytes=64 * 1024 * 1024,
        bytes_per_row=40.0,
    )
    splits = {"inference": {"rows": count, "shards": shards}}
    manifest = feature_logic.manifest(training["run_id"], splits, training["statistics"])
    io.write_json(spark, io.normalize(args.manifest), manifest)


if __name__ == "__main__":
    main()
