"""Baselines of the regression example on the same held-out test split the quality gate reads, next to the
RMSE floor that the generator knows (truth.json's `noise_sd`).

    python examples/regression/baselines.py --workdir WORKDIR [--json OUT]

WORKDIR is a finished `mlpipe local run --workload examples/regression --workdir WORKDIR`: its copy of S3
(WORKDIR/s3/) holds the run's feature manifest, shards, curated data and evaluation, and WORKDIR/data/ the
generator's truth.json.

Where the split comes from: the training feature manifest's `train` and `test` shards. They
carry the id, the label and the Spark features (`num_*` standardized, `cat_*` indices) of each row, so the
split is exactly the one training and evaluation used. For the raw columns, the shards' rows are joined by
id to the curated readings (the clean stage's Parquet, partitioned or not), which hold them as the clean
stage typed them.

Every model is fit on the `train` split and scored on `test`:

- `mean`: the train split's mean label, for every row;
- `linear_raw`: least squares on the raw columns: floor_area, occupancy, temperature_c, the hour of `ts`
  (a number 0-23) and one-hot building_type and site;
- `linear_features`: least squares on the Spark features: every `num_*` and one-hot of every `cat_*`;
- `model`: the test RMSE that the run's evaluation job (evaluate.py) reported: the quality gate's figure.

It prints each RMSE and its ratio to the floor. Local files only; numpy and pyarrow, no Spark.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

RAW_NUMERIC = ("floor_area", "occupancy", "temperature_c")
RAW_CATEGORICAL = ("building_type", "site")


def shards(manifest: dict[str, Any], split: str) -> pa.Table:
    tables = [pq.read_table(s["uri"]) for s in manifest["splits"][split]["shards"]]
    return pa.concat_tables(tables)


def one_hot(values: np.ndarray, levels: np.ndarray) -> np.ndarray:
    return (values[:, None] == levels[None, :]).astype(np.float64)


def design_features(table: pa.Table, manifest: dict[str, Any]) -> list[np.ndarray]:
    columns = [table[c].to_numpy().astype(np.float64)[:, None] for c in manifest["numeric_features"]]
    for c in manifest.get("categorical_features") or []:
        levels = np.arange(1, int(c["buckets"]))  # index 0 is the intercept's
        columns.append(one_hot(table[c["name"]].to_numpy(), levels))
    return columns


def design_raw(table: pa.Table, levels: dict[str, np.ndarray]) -> list[np.ndarray]:
    columns = [table[c].to_numpy().astype(np.float64)[:, None] for c in RAW_NUMERIC]
    columns.append(pc.hour(table["ts"]).to_numpy().astype(np.float64)[:, None])
    for c in RAW_CATEGORICAL:
        columns.append(one_hot(table[c].to_numpy(zero_copy_only=False), levels[c][1:]))
    return columns


def least_squares(train: list[np.ndarray], y: np.ndarray, test: list[np.ndarray]) -> np.ndarray:
    """Predictions on `test` of an ordinary least-squares fit with an intercept on `train`."""
    x_train = np.hstack([np.ones((len(y), 1)), *train])
    x_test = np.hstack([np.ones((len(test[0]), 1)), *test])
    coefficients, *_ = np.linalg.lstsq(x_train, y, rcond=None)
    return x_test @ coefficients


def rmse(predicted: np.ndarray, y: np.ndarray) -> float:
    return math.sqrt(float(np.mean((predicted - y) ** 2)))


def compute(manifest: dict[str, Any], curated: Path, truth: dict[str, Any]) -> dict[str, Any]:
    id_column, label = manifest["id_column"], manifest["label_column"]
    curated_table = ds.dataset(str(curated), format="parquet", partitioning="hive").to_table(
        columns=[id_column, "ts", *RAW_NUMERIC, *RAW_CATEGORICAL]
    )
    splits = {}
    for name in ("train", "test"):
        table = shards(manifest, name)
        joined = table.join(curated_table, id_column, join_type="inner")
        if joined.num_rows != table.num_rows:
            raise SystemExit(f"{joined.num_rows} of the {table.num_rows} {name} rows are in {curated}")
        splits[name] = joined
    train, test = splits["train"], splits["test"]
    y_train, y_test = (t[label].to_numpy().astype(np.float64) for t in (train, test))
    levels = {c: np.unique(train[c].to_numpy(zero_copy_only=False)) for c in RAW_CATEGORICAL}
    results = {
        "mean": rmse(np.full(len(y_test), y_train.mean()), y_test),
        "linear_raw": rmse(
            least_squares(design_raw(train, levels), y_train, design_raw(test, levels)), y_test
        ),
        "linear_features": rmse(
            least_squares(design_features(train, manifest), y_train, design_features(test, manifest)), y_test
        ),
    }
    return {
        "floor": float(truth["noise_sd"]),
        "rows": {"train": len(y_train), "test": len(y_test)},
        "rmse": results,
    }


def local_run(workdir: Path) -> tuple[dict[str, Any], Path, dict[str, Any], float]:
    """The feature manifest (shard URIs made local), the curated folder, the truth and the evaluation's test
    RMSE of a finished local run in `workdir`."""
    summary = json.loads((workdir / "summary.json").read_text())
    if summary.get("status") != "SUCCEEDED":
        raise SystemExit(f"{workdir} holds no successful run")

    def local(uri: str) -> Path:
        return workdir / "s3" / uri.removeprefix("s3://")

    run = Path(summary["model_path"]).parents[2]  # runs/<workload>/<run id>/
    model_manifest = json.loads((run / "model" / "manifest.json").read_text())
    manifest = json.loads(local(model_manifest["lineage"]["training_input_uri"]).read_text())
    for split in manifest["splits"].values():
        for shard in split["shards"]:
            shard["uri"] = str(local(shard["uri"]))
    curated = local(model_manifest["lineage"]["curated_uri"])
    truth = json.loads((workdir / "data" / "truth.json").read_text())
    evaluation = json.loads((run / "evaluation" / "metrics.json").read_text())
    return manifest, curated, truth, float(evaluation["test"]["rmse"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True, help="a finished local run of this workload")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    manifest, curated, truth, model = local_run(args.workdir)
    result = compute(manifest, curated, truth)
    result["rmse"]["model"] = model
    floor = result["floor"]
    result["ratio_to_floor"] = {k: v / floor for k, v in result["rmse"].items()}
    print(
        f"test rows {result['rows']['test']} (train {result['rows']['train']}); floor (noise_sd) {floor:.4f}"
    )
    for name, value in result["rmse"].items():
        print(f"  {name:16s} rmse {value:.4f}  {value / floor:.3f}x floor")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
