"""mlpipe's EMR feature driver for training: curated records -> train, validation and test feature shards
plus the feature manifest, around the workload's feature module (emr_steps/mlpipe_features.py has the
contract).

    spark-submit --py-files emr_steps.zip,<code package> build_features.py --input s3://<curated>/curated/<w>/
        --output s3://<curated>/features/<w>/<run_id>/ --manifest s3://<curated>/features/<w>/<run_id>/manifest.json
        --workload-module features --id-column ID --label-column LABEL [--split-by time --time-column T |
        --split-by ratio] [--validation-fraction 0.1] [--test-fraction 0.1] [--run-id ID] [--target-shard-mb N]

Locally: `python emr_steps/build_features.py ... --workload-path WORKLOAD_DIR`. By time, the first
part of the time span (cut at a whole hour) is training, the next validation, the rest test; by ratio, a
seeded hash of the id decides. Statistics are fit on the training rows only and recorded in the manifest,
so that the inference step standardizes new data the same way.
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
SPLIT_SEED = 20_240_601  # a fixed seed: a row keeps its ratio split across runs


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit status 2 (via run_main)
        raise io.UsageError(message)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = _Parser(prog=PROG, description=__doc__)
    parser.add_argument("--input", required=True, help="curated records (Parquet)")
    parser.add_argument("--output", required=True, help="folder for train/, validation/, test/")
    parser.add_argument("--manifest", required=True, help="where to write the mlpipe.features.v1 manifest")
    parser.add_argument("--workload-module", required=True, help="the workload's feature module")
    parser.add_argument("--workload-path", help="plain python only: the workload folder or code package")
    parser.add_argument("--id-column", required=True)
    parser.add_argument("--label-column", required=True)
    parser.add_argument("--split-by", choices=("time", "ratio"), default="ratio")
    parser.add_argument("--time-column", help="the column that orders the rows (--split-by time)")
    parser.add_argument("--validation-fraction", type=float, default=0.1)
    parser.add_argument("--test-fraction", type=float, default=0.1)
    parser.add_argument("--run-id", default=None, help="run id recorded in the manifest")
    parser.add_argument("--target-shard-mb", type=float, default=128.0)
    args = parser.parse_args(argv)
    if args.target_shard_mb <= 0:
        parser.error(f"--target-shard-mb must be positive, got {args.target_shard_mb}")
    if not (0 < args.validation_fraction < 0.5 and 0 < args.test_fraction < 0.5):
        parser.error("--validation-fraction and --test-fraction must each be in (0, 0.5)")
    if args.split_by == "time" and not args.time_column:
        parser.error("--split-by time needs --time-column")
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


def build(spark: Any, args: argparse.Namespace, module: features.FeatureModule) -> dict[str, Any]:
    """Compute the features, write the shards of every split and the manifest; returns the manifest."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    spark.conf.set("spark.sql.session.timeZone", "UTC")
    output = io.normalize(args.output)
    rows_df = module.features(io.read_records(spark, args.input))
    needed = [args.id_column, args.label_column] + ([args.time_column] if args.split_by == "time" else [])
    try:
        features.check_columns(rows_df, module, needed)
    except features.ContractError as exc:
        raise io.UsageError(str(exc)) from None

    boundaries: dict[str, str] = {}
    if args.split_by == "time":
        bounds = rows_df.agg(
            F.min(args.time_column).alias("first"), F.max(args.time_column).alias("last")
        ).first()
        if bounds is None or bounds["first"] is None:
            raise io.UsageError(f"no records in {args.input}")
        first, last = (bounds[k].replace(tzinfo=UTC) for k in ("first", "last"))
        train = 1.0 - args.validation_fraction - args.test_fraction
        train_end, validation_end = split_boundaries(first, last, train, args.validation_fraction)
        split = features.time_split(
            args.time_column, train_end.replace(tzinfo=None), validation_end.replace(tzinfo=None)
        )
        boundaries = {"train_end": io.iso(train_end), "validation_end": io.iso(validation_end)}
    else:
        split = features.ratio_split(args.id_column, args.validation_fraction, args.test_fraction, SPLIT_SEED)

    split_rows = rows_df.withColumn("split", split).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        statistics, rows = features.fit_statistics(split_rows, module.numeric)
        if rows["train"] == 0:
            raise io.UsageError("the training split is empty: too few records")
        staging = io.join(output, f"_staging-{uuid.uuid4().hex}")
        bytes_per_row = io.estimated_bytes_per_row(len(module.numeric), len(module.categorical))
        splits = {}
        for name in features.SPLITS:
            shard_df = features.shard_columns(
                split_rows.where(F.col("split") == name),
                module,
                statistics,
                id_column=args.id_column,
                label_column=args.label_column,
            )
            shards = io.write_shards(
                spark,
                shard_df,
                rows=rows[name],
                folder=io.join(output, name),
                staging=io.join(staging, name),
                target_bytes=args.target_shard_mb * 1024 * 1024,
                bytes_per_row=bytes_per_row,
            )
            splits[name] = {"rows": rows[name], "shards": shards}
        io.delete(spark, staging)
    finally:
        split_rows.unpersist()

    manifest = {
        "format": features.FORMAT,
        "run_id": args.run_id or Path(output).name,
        "created_at": io.iso(datetime.now(UTC)),
        "id_column": args.id_column,
        "label_column": args.label_column,
        "numeric_features": module.numeric_columns,
        "categorical_features": module.categorical_columns,
        "splits": splits,
        "statistics": statistics,
        "split": {"by": args.split_by, "time_column": args.time_column, **boundaries},
        "split_boundaries": boundaries,
    }
    io.write_json(spark, io.normalize(args.manifest), manifest)
    return manifest


def load(name: str) -> features.FeatureModule:
    try:
        return features.load_module(name)
    except features.ContractError as exc:
        raise io.UsageError(str(exc)) from None


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    io.check_local_inputs(args.input)  # before paying for a JVM
    io.add_workload_path(args.workload_path)
    module = load(args.workload_module)
    manifest = build(io.spark_session(PROG), args, module)
    print({s: manifest["splits"][s]["rows"] for s in features.SPLITS})
    return 0


if __name__ == "__main__":
    sys.exit(io.run_main(PROG, main, None))
