"""EMR step: curated events -> inference feature shards, standardized with a training run's statistics.

    spark-submit --py-files emr_steps.zip inference_features.py --input <curated events URI>
        --training-manifest <manifest URI> --output s3://<curated>/features/<run_id>/inference/
        --manifest s3://<curated>/features/<run_id>/inference_manifest.json [--since TIMESTAMP]

History features need earlier events: every input event is used as history, and with `--since` only events
at or after that time are written. Shards carry no label column.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling modules when run as a plain script

import mlpipe_emr_io as io
import mlpipe_features as features

PROG = "inference_features"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        raise io.UsageError(message)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = _Parser(prog=PROG, description=__doc__)
    parser.add_argument("--input", required=True, help="curated events (Parquet, partitioned by dt)")
    parser.add_argument(
        "--training-manifest", required=True, help="the training run's mlpipe.features.v1 manifest"
    )
    parser.add_argument("--output", required=True, help="folder for the inference shards")
    parser.add_argument("--manifest", required=True, help="where to write the inference manifest")
    parser.add_argument("--run-id", default=None)
    parser.add_argument("--since", default=None, help="only write events at or after this ISO-8601 time")
    parser.add_argument("--target-shard-mb", type=float, default=128.0)
    args = parser.parse_args(argv)
    if args.target_shard_mb <= 0:
        parser.error(f"--target-shard-mb must be positive, got {args.target_shard_mb}")
    if args.since is not None:
        try:
            args.since = datetime.fromisoformat(args.since.replace("Z", "+00:00")).astimezone(UTC)
        except ValueError:
            parser.error(f"--since is not an ISO-8601 timestamp: {args.since!r}")
    return args


def load_training_manifest(spark: Any, uri: str) -> dict[str, Any]:
    """The training manifest, checked against the features this code computes."""
    try:
        manifest = json.loads(io.read_text(spark, io.normalize(uri)))
    except json.JSONDecodeError as exc:
        raise io.UsageError(f"training manifest {uri} is not JSON: {exc}") from exc
    if manifest.get("format") != features.FORMAT:
        raise io.UsageError(
            f"training manifest {uri} is not {features.FORMAT}: format={manifest.get('format')!r}"
        )
    expected_cat = [{"name": f"cat_{n}", "buckets": b} for n, b in features.CATEGORICAL_FEATURES]
    if (
        manifest.get("numeric_features") != features.numeric_columns()
        or manifest.get("categorical_features") != expected_cat
    ):
        raise io.UsageError(
            f"training manifest {uri} lists other features than this version of the step computes"
        )
    return manifest


def build(spark: Any, args: argparse.Namespace) -> dict[str, Any]:
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    spark.conf.set("spark.sql.session.timeZone", "UTC")
    training = load_training_manifest(spark, args.training_manifest)
    output = io.normalize(args.output)
    feats = features.raw_features(io.read_events(spark, args.input))
    if args.since is not None:
        feats = feats.where(F.col("ts") >= F.lit(args.since.replace(tzinfo=None)))
    shard_df = features.standardize(feats, training["statistics"], with_label=False).persist(
        StorageLevel.MEMORY_AND_DISK
    )
    try:
        rows = shard_df.count()
        shards = io.write_shards(
            spark,
            shard_df,
            rows=rows,
            folder=output,
            staging=f"{output}_staging-{uuid.uuid4().hex}",
            target_bytes=args.target_shard_mb * 1024 * 1024,
            bytes_per_row=io.estimated_bytes_per_row(
                len(features.NUMERIC_FEATURES), len(features.CATEGORICAL_FEATURES)
            ),
        )
    finally:
        shard_df.unpersist()
    manifest = {
        "format": features.FORMAT,
        "run_id": args.run_id or training.get("run_id") or Path(output).parent.name,
        "created_at": io.iso(datetime.now(UTC)),
        "id_column": features.ID_COLUMN,
        "label_column": features.LABEL_COLUMN,
        "numeric_features": training["numeric_features"],
        "categorical_features": training["categorical_features"],
        "splits": {"inference": {"rows": rows, "shards": shards}},
        "statistics": training["statistics"],
        # The boundaries of the training run whose statistics were applied.
        "split_boundaries": training.get("split_boundaries", {}),
    }
    io.write_json(spark, io.normalize(args.manifest), manifest)
    return manifest


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    io.check_local_inputs(args.input, getattr(args, "training_manifest", None))  # before paying for a JVM
    manifest = build(io.spark_session(PROG), args)
    print({"inference": manifest["splits"]["inference"]["rows"]})
    return 0


if __name__ == "__main__":
    sys.exit(io.run_main(PROG, main, None))
