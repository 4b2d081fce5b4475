"""The regression example (examples/regression/) through mlpipe's own drivers: the generator and its truth,
the clean module under the Glue driver on local Spark (the accounting matches what was generated) and the
feature module under the EMR drivers. Sizes are tiny: quality is bench's job. Its train.py, evaluate.py and
infer.py run under mlpipe_batch.run in tests/local/test_workloads.py (the whole pipeline, where inference and
evaluation are checked against each other); its train.py also in tests/batch_containers/test_workload_run.py
(2 nodes x 2 ranks).
"""

from __future__ import annotations

import gzip
import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from mlpipe import workload as workload_manifest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "regression"
EMR_STEPS = REPO / "emr_steps"
if str(EMR_STEPS) not in sys.path:
    sys.path.insert(0, str(EMR_STEPS))

import build_features  # noqa: E402
import inference_features  # noqa: E402
import mlpipe_features  # noqa: E402

ROWS = 4_000  # every dirty kind occurs at least 4 times
SEED = 5


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
