"""EMR step: curated events -> training, validation and test feature shards plus the feature manifest.

    spark-submit --py-files emr_steps.zip build_features.py --input s3://<curated>/events/
        --output s3://<curated>/features/<run_id>/ --manifest s3://<curated>/features/<run_id>/manifest.json
        [--run-id ID] [--target-shard-mb N] [--train-fraction 0.8] [--validation-fraction 0.1]

Locally: `python emr_steps/build_features.py --input DIR --output DIR --manifest FILE`.
The split is by time: the first `train-fraction` of the time span (cut at a whole hour) is training, the next
`validation-fraction` validation, the rest test. Statistics are fit on the training rows only.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling modules when run as a plain script

import mlpipe_emr_io as io
import mlpipe_features as features

PROG = "build_features"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit status 2 (via run_main)
        raise io.UsageError(message)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = _Parser(prog=PROG, description=__doc__)
    parser.add_argument("--input", required=True, help="curated events (Parquet, partitioned by dt)")
    parser.add_argument("--output", required=True, help="folder for train/, validation/, test/")
    parser.add_argument("--manifest", required=True, help="where to write the mlpipe.features.v1 manifest")
    parser.add_argument("--run-id", default=None, help="run id recorded in the manifest")
    parser.add_argument("--target-shard-mb", type=float, default=128.0)
    parser.add_argument("--train-fraction", type=float, default=0.8)
    parser.add_argument("--validation-fraction", type=float, default=0.1)
    args = parser.parse_args(argv)
    if args.target_shard_mb <= 0:
        parser.error(f"--target-shard-mb must be positive, got {args.target_shard_mb}")
    if not (args.train_fraction > 0 and args.validation_fraction >= 0 and
            args.train_fraction + args.validation_fraction < 1):  # fmt: skip
        parser.error("--train-fraction and --validation-fraction must be positive and sum to less than 1")
    return args


def split_boundaries(
    first: datetime, last: datetime, train: float, validation: float
) -> tuple[datetime, datetime]:
    """Train and validation ends, at whole hours inside [first, last]."""
    span = last - first

    def cut(fraction: float) -> datetime:
        at = first + span * fraction
        return at.replace(minute=0, second=0, microsecond=0) if at - first >= timedelta(hours=1) else at

    return cut(train), cut(train + validation)


def build(spark: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Compute the features, write the shards of every split and the manifest; returns the manifest."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    spark.conf.set("spark.sql.session.timeZone", "UTC")
    output = io.normalize(args.output)
    events = io.read_events(spark, args.input)
    bounds = events.agg(F.min("ts").alias("first"), F.max("ts").alias("last")).first()
    if bounds is None or bounds["first"] is None:
        raise io.UsageError(f"no events in {args.input}")
    first, last = (bounds[k].replace(tzinfo=UTC) for k in ("first", "last"))
    train_end, validation_end = split_boundaries(first, last, args.train_fraction, args.validation_fraction)

    feats = (
        features.raw_features(events)
        .withColumn(
            "split",
            features.split_column(train_end.replace(tzinfo=None), validation_end.replace(tzinfo=None)),
        )
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    try:
        statistics, rows = features.fit_statistics(feats)
        if rows["train"] == 0:
            raise io.UsageError("the training split is empty: too few events or timestamps")
        staging = io.join(output, f"_staging-{uuid.uuid4().hex}")
        bytes_per_row = io.estimated_bytes_per_row(
            len(features.NUMERIC_FEATURES), len(features.CATEGORICAL_FEATURES)
        )
        splits = {}
        for split in features.SPLITS:
            shard_df = features.standardize(feats.where(F.col("split") == split), statistics)
            shards = io.write_shards(
                spark,
                shard_df,
                rows=rows[split],
                folder=io.join(output, split),
                staging=io.join(staging, split),
                target_bytes=args.target_shard_mb * 1024 * 1024,
                bytes_per_row=bytes_per_row,
            )
            splits[split] = {"rows": rows[split], "shards": shards}
        io.delete(spark, staging)
    finally:
        feats.unpersist()

    manifest = {
        "format": features.FORMAT,
        "run_id": args.run_id or Path(output).name,
        "created_at": io.iso(datetime.now(UTC)),
        "id_column": features.ID_COLUMN,
        "label_column": features.LABEL_COLUMN,
        "numeric_features": features.numeric_columns(),
        "categorical_features": [
            {"name": f"cat_{n}", "buckets": b} for n, b in features.CATEGORICAL_FEATURES
        ],
        "splits": splits,
        "statistics": statistics,
        "split_boundaries": {"train_end": io.iso(train_end), "validation_end": io.iso(validation_end)},
    }
    io.write_json(spark, io.normalize(args.manifest), manifest)
    return manifest


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    io.check_local_inputs(args.input, getattr(args, "training_manifest", None))  # before paying for a JVM
    manifest = build(io.spark_session(PROG), args)
    print({s: manifest["splits"][s]["rows"] for s in features.SPLITS})
    return 0


if __name__ == "__main__":
    sys.exit(io.run_main(PROG, main, None))
