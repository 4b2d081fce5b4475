"""The regression example (examples/regression/) through mlpipe's own drivers: the generator and its truth,
the clean module under the Glue driver on local Spark (the accounting matches what was generated), the
feature module under the EMR drivers, then train.py, evaluate.py and infer.py under mlpipe_batch.run with
the code package, the model and the outputs on S3 (a moto server). Sizes are tiny: quality is bench's job.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from mlpipe import code_package
from mlpipe import workload as workload_manifest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "regression"
EMR_STEPS = REPO / "emr_steps"
BATCH_SRC = REPO / "batch_containers" / "src"
if str(EMR_STEPS) not in sys.path:
    sys.path.insert(0, str(EMR_STEPS))

import build_features  # noqa: E402
import inference_features  # noqa: E402
import mlpipe_features  # noqa: E402

ROWS = 4_000  # every dirty kind occurs at least 4 times
SEED = 5
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _load(path: Path, name: str) -> ModuleType:
    """A module by path under a name of its own: the clickstream example's modules are also `clean` and
    `features`, and one pytest process may import both."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


generate = _load(EXAMPLE / "generate.py", "regression_generate")
clean = _load(EXAMPLE / "clean.py", "regression_clean")
features = _load(EXAMPLE / "features.py", "regression_features")
glue_job = _load(REPO / "glue_jobs" / "mlpipe_clean.py", "regression_glue_clean")
WORKLOAD = workload_manifest.load(EXAMPLE)


# --- The generator ---------------------------------------------------------------------------------------
def _lines(raw: Path) -> list[str]:
    return [
        line
        for part in sorted(raw.glob("part-*.csv.gz"))
        for line in gzip.decompress(part.read_bytes()).decode().splitlines()
    ]


def test_the_generator_is_deterministic_and_its_truth_counts_every_line(tmp_path: Path) -> None:
    first = generate.generate(1_500, SEED, tmp_path / "a", rows_per_part=700)
    again = generate.generate(1_500, SEED, tmp_path / "b", rows_per_part=700)
    other = generate.generate(1_500, SEED + 1, tmp_path / "c", rows_per_part=700)
    parts = sorted(p.name for p in (tmp_path / "a" / "raw").iterdir())
    assert parts == ["part-00000.csv.gz", "part-00001.csv.gz", "part-00002.csv.gz"]
    for name in parts:  # byte for byte
        assert (tmp_path / "a" / "raw" / name).read_bytes() == (tmp_path / "b" / "raw" / name).read_bytes()
    assert first == again and _lines(tmp_path / "a" / "raw") != _lines(tmp_path / "c" / "raw")
    assert other["noise_sd"] == first["noise_sd"] == generate.NOISE_SD

    lines = _lines(tmp_path / "a" / "raw")
    header = ",".join(generate.HEADER)
    data = [line for line in lines if line != header]
    assert len(lines) - len(data) == first["header_lines"] == len(parts)
    assert len(data) == first["lines"] == first["rows"] + first["duplicates"]
    assert len({line.split(",")[0] for line in data}) == first["rows"] == 1_500
    assert len(data) - len(set(data)) == first["duplicates"] > 0  # exact copies
    assert sum(first["dirty"].values()) == first["rows"] - first["rows_valid"]
    assert set(first["dirty"]) == set(generate.DIRTY_SHARES)  # every kind, even at this size
    assert sum(first["dirty_by_reason"].values()) == sum(first["dirty"].values())


def test_the_vocabularies_agree_across_generator_clean_and_features() -> None:
    assert generate.SITES == clean.SITES == features.SITES
    assert generate.BUILDING_TYPES == clean.BUILDING_TYPES == features.BUILDING_TYPES
    assert tuple(f.split()[0] for f in clean.SCHEMA.split(",")) == generate.HEADER
    assert WORKLOAD.metric.gate == pytest.approx(1.25 * generate.NOISE_SD)
    assert any(c.nodes == 2 for c in WORKLOAD.candidates)


# --- The clean stage (mlpipe's Glue driver) --------------------------------------------------------------
@pytest.fixture(scope="module")
def cleaned(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("regression")
    truth = generate.generate(ROWS, SEED, root, rows_per_part=1_500)
    c = WORKLOAD.clean
    assert c is not None
    args = glue_job.parse_args(
        ["--input", str(root / "raw"), "--output", str(root / "curated"), "--quarantine", str(root / "quarantine"),
         "--report", str(root / "report.json"), "--workload-module", "regression_clean", "--format", "csv",
         "--csv-header", "true", "--dedupe-key", ",".join(c.dedupe_key), "--partition-column", c.partition_column]
    )  # fmt: skip
    report = glue_job.run(spark, args, clean)
    return {"root": root, "truth": truth, "report": report}


@pytest.mark.spark
@pytest.mark.xdist_group("spark")
def test_the_clean_accounting_is_what_the_generator_wrote(cleaned: dict[str, Any], spark: Any) -> None:
    report, truth = cleaned["report"], cleaned["truth"]
    assert report["balanced"] is True and report["header_lines"] == truth["header_lines"]
    assert report["rows_in"] == truth["lines"]
    assert report["rows_curated"] == truth["rows_valid"]
    assert report["rows_quarantined"] == sum(truth["dirty"].values())
    assert report["duplicates_removed"] == truth["duplicates"]
    assert report["quarantine_fields"] == truth["dirty"]
    assert report["quarantine_reasons"] == truth["dirty_by_reason"]
    assert report["partitions"] == [f"2025-0{m}" for m in range(1, 7)]

    curated = spark.read.parquet(str(cleaned["root"] / "curated"))
    types = dict(curated.dtypes)
    assert (types["ts"], types["floor_area"], types["occupancy"], types["log_load"]) == (
        "timestamp",
        "double",
        "int",
        "double",
    )
    assert curated.select("reading_id").distinct().count() == truth["rows_valid"]


# --- The feature stage (mlpipe's EMR drivers) ------------------------------------------------------------
@pytest.fixture(scope="module")
def module() -> mlpipe_features.FeatureModule:
    return mlpipe_features.load_module("regression_features")


@pytest.mark.spark
@pytest.mark.xdist_group("spark")
def test_features_of_one_reading(spark: Any, module: mlpipe_features.FeatureModule) -> None:
    from datetime import datetime

    row = ("r1", datetime(2025, 3, 1, 6, 0, 0), "site-03", "retail", 100.0, 9, 10.0, 4.2)
    df = spark.createDataFrame([row], "reading_id string, ts timestamp, site string, building_type string, "
                               "floor_area double, occupancy int, temperature_c double, log_load double")  # fmt: skip
    got = module.features(df).first().asDict()
    assert got["reading_id"] == "r1" and got["log_load"] == 4.2
    assert got["log_floor_area"] == pytest.approx(math.log(100.0))
    assert (got["hour_sin"], got["hour_cos"]) == (pytest.approx(1.0), pytest.approx(0.0, abs=1e-12))
    assert (got["heating_degrees"], got["cooling_degrees"], got["temperature_c"]) == (8.0, 0.0, 10.0)
    assert got["log_occupancy"] == pytest.approx(math.log(10.0))
    assert (got["site"], got["building_type"]) == (3, 3)  # 1-based in the vocabulary
    unknown = module.features(df.withColumn("site", df["site"].substr(1, 4))).first()
    assert unknown["site"] == 0
    assert "log_load" not in module.features(df.drop("log_load")).columns  # inference data


@pytest.fixture(scope="module")
def built(spark: Any, cleaned: dict[str, Any], module: mlpipe_features.FeatureModule) -> dict[str, Any]:
    root, f = cleaned["root"], WORKLOAD.features
    assert f is not None
    args = build_features.parse_args(
        ["--input", str(root / "curated"), "--output", str(root / "features"),
         "--manifest", str(root / "features" / "manifest.json"), "--workload-module", "regression_features",
         "--id-column", f.id_column, "--label-column", f.label_column, "--split-by", f.split_by,
         "--validation-fraction", str(f.validation_fraction), "--test-fraction", str(f.test_fraction)]
    )  # fmt: skip
    manifest = build_features.build(spark, args, module)
    inference_args = inference_features.parse_args(
        ["--input", str(root / "curated"), "--training-manifest", args.manifest,
         "--output", str(root / "features" / "inference"), "--manifest", str(root / "inference_manifest.json"),
         "--workload-module", "regression_features"]
    )  # fmt: skip
    inference = inference_features.build(spark, inference_args, module)
    return {"manifest": manifest, "inference": inference}


@pytest.mark.spark
@pytest.mark.xdist_group("spark")
def test_the_feature_manifest_splits_and_columns(built: dict[str, Any], cleaned: dict[str, Any]) -> None:
    manifest, valid = built["manifest"], cleaned["truth"]["rows_valid"]
    rows = {s: manifest["splits"][s]["rows"] for s in ("train", "validation", "test")}
    assert sum(rows.values()) == valid
    for split, share in (("validation", 0.1), ("test", 0.1)):
        assert abs(rows[split] - share * valid) < 4 * math.sqrt(share * valid), rows  # a seeded hash
    assert manifest["numeric_features"] == [f"num_{n}" for n in features.NUMERIC_FEATURES]
    assert manifest["categorical_features"] == [
        {"name": "cat_building_type", "buckets": 5},
        {"name": "cat_site", "buckets": 13},
    ]
    assert (manifest["id_column"], manifest["label_column"]) == ("reading_id", "log_load")
    train = pq.read_table(manifest["splits"]["train"]["shards"][0]["uri"])
    assert train.column_names == [
        "reading_id",
        "log_load",
        *manifest["numeric_features"],
        "cat_building_type",
        "cat_site",
    ]
    numeric = np.stack([train[c].to_numpy() for c in manifest["numeric_features"]], axis=1)
    assert np.allclose(numeric.mean(axis=0), 0, atol=0.05) and np.all(np.isfinite(numeric))
    for c in manifest["categorical_features"]:
        values = train[c["name"]].to_numpy()
        assert values.min() >= 1 and values.max() < c["buckets"]  # curated data has no unknown value
    assert built["inference"]["splits"]["inference"]["rows"] == valid


# --- train.py, evaluate.py, infer.py under mlpipe's launcher, on S3 ----------------------------------------
@pytest.fixture(scope="module")
def s3(moto_server: str) -> Any:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=moto_server,
        aws_access_key_id=FAKE_AWS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_AWS["AWS_SECRET_ACCESS_KEY"],
        region_name=FAKE_AWS["AWS_DEFAULT_REGION"],
    )
    for bucket in ("reg-artifacts", "reg-curated"):  # moto servers of one process share buckets
        client.create_bucket(Bucket=bucket)
    return client


def _upload_manifest(s3: Any, manifest: dict[str, Any], prefix: str) -> str:
    """The manifest and its shards under s3://reg-curated/<prefix>/, with the shard URIs rewritten."""
    splits = {}
    for name, split in manifest["splits"].items():
        shards = []
        for i, shard in enumerate(split["shards"]):
            key = f"{prefix}/{name}/part-{i:05d}.parquet"
            s3.put_object(Bucket="reg-curated", Key=key, Body=Path(shard["uri"]).read_bytes())
            shards.append({**shard, "uri": f"s3://reg-curated/{key}"})
        splits[name] = {**split, "shards": shards}
    s3.put_object(
        Bucket="reg-curated", Key=f"{prefix}/manifest.json", Body=json.dumps({**manifest, "splits": splits})
    )
    return f"s3://reg-curated/{prefix}/manifest.json"


def _launch(moto_server: str, tmp_path: Path, args: list[str], port: int) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_BATCH_", "MLPIPE_", "RANK", "WORLD_SIZE", "MASTER_"))
    }
    env.update(FAKE_AWS, AWS_ENDPOINT_URL=moto_server, PYTHONPATH=str(BATCH_SRC), OMP_NUM_THREADS="1",
               MLPIPE_NPROC_PER_NODE="1", MLPIPE_MASTER_PORT=str(port), MLPIPE_WORKDIR=str(tmp_path))  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "mlpipe_batch.run", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def _json(s3: Any, key: str) -> Any:
    return json.loads(s3.get_object(Bucket="reg-artifacts", Key=key)["Body"].read())


@pytest.mark.spark
@pytest.mark.torch
@pytest.mark.xdist_group("spark")
def test_train_evaluate_infer_through_the_launcher_keep_the_output_contracts(
    built: dict[str, Any], s3: Any, moto_server: str, tmp_path: Path, free_port: Any
) -> None:
    package = code_package.build(EXAMPLE)
    s3.put_object(Bucket="reg-artifacts", Key="code/regression.zip", Body=package.data)
    code = ["--code", "s3://reg-artifacts/code/regression.zip", "--code-sha256", package.sha256]
    training = _upload_manifest(s3, built["manifest"], "features/r1")
    inference = _upload_manifest(s3, built["inference"], "features/r1/inference")
    run = "s3://reg-artifacts/runs/r1"
    hp = {"epochs": 3, "batch_size": 128, "hidden": [16], "lr": 0.01}

    _launch(moto_server, tmp_path, [*code, "--entrypoint", "train.py", "--input", training, "--output",
            f"{run}/candidates/mlp/", "--checkpoint", "s3://reg-artifacts/checkpoints/r1/mlp/",
            "--hyperparameters", json.dumps(hp)], port=free_port())  # fmt: skip
    trained = _json(s3, "runs/r1/candidates/mlp/metrics.json")
    assert isinstance(trained["validation"]["rmse"], float) and trained["world_size"] == 1
    listed = s3.list_objects_v2(Bucket="reg-artifacts", Prefix="runs/r1/candidates/mlp/model/")["Contents"]
    assert sorted(o["Key"].rsplit("/", 1)[1] for o in listed) == ["model.json", "model.pt"]

    model = ["--model", f"{run}/candidates/mlp/model/"]
    _launch(moto_server, tmp_path, [*code, "--entrypoint", "evaluate.py", "--input", training, *model,
            "--output", f"{run}/evaluation/"], port=free_port())  # fmt: skip
    _launch(moto_server, tmp_path, [*code, "--entrypoint", "infer.py", "--input", inference, *model,
            "--output", f"{run}/inference/"], port=free_port())  # fmt: skip

    evaluation = _json(s3, "runs/r1/evaluation/metrics.json")
    assert set(evaluation) >= {"test", "rows"} and isinstance(evaluation["test"]["rmse"], float)
    assert evaluation["rows"] == built["manifest"]["splits"]["test"]["rows"]
    inferred = _json(s3, "runs/r1/inference/metrics.json")
    assert inferred == {"rows": built["inference"]["splits"]["inference"]["rows"]}

    parts = s3.list_objects_v2(Bucket="reg-artifacts", Prefix="runs/r1/inference/part-")["Contents"]
    tables = [
        pq.read_table(io.BytesIO(s3.get_object(Bucket="reg-artifacts", Key=p["Key"])["Body"].read()))
        for p in parts
    ]
    assert all(t.column_names == ["reading_id", "prediction"] for t in tables)
    predicted = {
        i: p
        for t in tables
        for i, p in zip(t["reading_id"].to_pylist(), t["prediction"].to_pylist(), strict=True)
    }
    assert len(predicted) == inferred["rows"]

    def rmse_of(split: str) -> float:  # inference's predictions of one split's rows, against their labels
        errors = []
        for shard in built["manifest"]["splits"][split]["shards"]:
            table = pq.read_table(shard["uri"], columns=["reading_id", "log_load"])
            ids, labels = table["reading_id"].to_pylist(), table["log_load"].to_pylist()
            errors += [predicted[i] - y for i, y in zip(ids, labels, strict=True)]
        return math.sqrt(sum(e * e for e in errors) / len(errors))

    # evaluate.py and infer.py load the model the same way, and evaluate scored the test rows alone
    assert evaluation["test"]["rmse"] == pytest.approx(rmse_of("test"), rel=1e-6)
    assert evaluation["test"]["rmse"] != pytest.approx(rmse_of("validation"), rel=1e-6)
    assert trained["validation"]["rmse"] == pytest.approx(rmse_of("validation"), rel=1e-4)
