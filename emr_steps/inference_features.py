"""mlpipe's EMR feature driver for new data: curated records -> inference feature shards, computed by the
workload's feature module and standardized with a training run's statistics.

    spark-submit --py-files emr_steps.zip,<code package> inference_features.py --input <records URI>
        --training-manifest <manifest URI> --output s3://<curated>/features/<run_id>/inference/
        --manifest s3://<curated>/features/<run_id>/inference_manifest.json --workload-module features
        [--since TIMESTAMP]

The id, label and time columns and the feature lists come from the training manifest; the module must still
compute those features. With `--since` (split by time only) every record is used (history features need
earlier ones) and only those at or after that time are written. Shards carry no label column.
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

import build_features
import mlpipe_emr_io as io
import mlpipe_features as features

PROG = "inference_features"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        raise io.UsageError(message)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = _Parser(prog=PROG, description=__doc__)
    parser.add_argument("--input", required=True, help="curated records (Parquet)")
    parser.add_argument(
        "--training-manifest", required=True, help="the training run's mlpipe.features.v1 manifest"
    )
    parser.add_argument("--output", required=True, help="folder for the inference shards")
    parser.add_argument("--manifest", required=True, help="where to write the inference manifest")
    parser.add_argument("--workload-module", required=True, help="the workload's feature module")
    parser.add_argument("--workload-path", help="plain python only: the workload folder or code package")
    parser.add_argument("--run-id", default=None)
    parser.add_argument("--since", default=None, help="only write records at or after this ISO-8601 time")
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


def load_training_manifest(spark: Any, uri: str, module: features.FeatureModule) -> dict[str, Any]:
    """The training manifest, checked against the features the module computes."""
    try:
        manifest = json.loads(io.read_text(spark, io.normalize(uri)))
    except json.JSONDecodeError as exc:
        raise io.UsageError(f"training manifest {uri} is not JSON: {exc}") from exc
    if manifest.get("format") != features.FORMAT:
        raise io.UsageError(
            f"training manifest {uri} is not {features.FORMAT}: format={manifest.get('format')!r}"
        )
    if (
        manifest.get("numeric_features") != module.numeric_columns
        or manifest.get("categorical_features") != module.categorical_columns
    ):
        raise io.UsageError(
            f"training manifest {uri} lists other features than {module.module.__name__} computes"
        )
    return manifest


def build(spark: Any, args: argparse.Namespace, module: features.FeatureModule) -> dict[str, Any]:
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    spark.conf.set("spark.sql.session.timeZone", "UTC")
    training = load_training_manifest(spark, args.training_manifest, module)
    id_column = training["id_column"]
    time_column = (training.get("split") or {}).get("time_column")
    output = io.normalize(args.output)
    rows_df = module.features(io.read_records(spark, args.input))
    try:
        features.check_columns(rows_df, module, [id_column] + ([time_column] if args.since else []))
    except features.ContractError as exc:
        raise io.UsageError(str(exc)) from None
    if args.since is not None:
        if not time_column:
            raise io.UsageError("--since needs a training run split by time")
        rows_df = rows_df.where(F.col(time_column) >= F.lit(args.since.replace(tzinfo=None)))
    shard_df = features.shard_columns(
        rows_df, module, training["statistics"], id_column=id_column, label_column=None
    ).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        rows = shard_df.count()
        shards = io.write_shards(
            spark,
            shard_df,
            rows=rows,
            folder=output,
            staging=f"{output}_staging-{uuid.uuid4().hex}",
            target_bytes=args.target_shard_mb * 1024 * 1024,
            bytes_per_row=io.estimated_bytes_per_row(len(module.numeric), len(module.categorical)),
        )
    finally:
        shard_df.unpersist()
    manifest = {
        "format": features.FORMAT,
        "run_id": args.run_id or training.get("run_id") or Path(output).parent.name,
        "created_at": io.iso(datetime.now(UTC)),
        "id_column": id_column,
        "label_column": training["label_column"],
        "numeric_features": training["numeric_features"],
        "categorical_features": training["categorical_features"],
        "splits": {"inference": {"rows": rows, "shards": shards}},
        "statistics": training["statistics"],
        # The split of the training run whose statistics were applied.
        "split": training.get("split", {}),
        "split_boundaries": training.get("split_boundaries", {}),
    }
    io.write_json(spark, io.normalize(args.manifest), manifest)
    return manifest


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    io.check_local_inputs(args.input, args.training_manifest)  # before paying for a JVM
    io.add_workload_path(args.workload_path)
    module = build_features.load(args.workload_module)
    manifest = build(io.spark_session(PROG), args, module)
    print({"inference": manifest["splits"]["inference"]["rows"]})
    return 0


if __name__ == "__main__":
    sys.exit(io.run_main(PROG, main, None))
