"""Fixtures of the Lambda tests: `lambdas/` on sys.path, the functions' environment, moto-backed S3 with
the project's three buckets, a SageMaker model package group, and builders for run artifacts."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

LAMBDAS = Path(__file__).resolve().parents[2] / "lambdas"
if str(LAMBDAS) not in sys.path:
    sys.path.insert(0, str(LAMBDAS))

import boto3  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from mlpipe_common import aws  # noqa: E402
from moto import mock_aws  # noqa: E402

RAW = "mlpipe-raw-test"
CURATED = "mlpipe-curated-test"
ARTIFACTS = "mlpipe-artifacts-test"
GROUP = "mlpipe-models-test"
DEFAULT_CANDIDATES = [
    {"name": "small", "hyperparameters": {"hidden": 32, "lr": 0.01}},
    {"name": "large", "hyperparameters": {"hidden": 128, "lr": 0.001}, "nodes": 2, "gpus": 4},
]


@pytest.fixture
def lambda_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {
        "RAW_BUCKET": RAW,
        "CURATED_BUCKET": CURATED,
        "ARTIFACTS_BUCKET": ARTIFACTS,
        "POWERTOOLS_SERVICE_NAME": "mlpipe-test",
        "LOG_LEVEL": "INFO",
        "FEATURES_SCRIPT_URI": f"s3://{ARTIFACTS}/code/emr/build_features.py",
        "INFERENCE_FEATURES_SCRIPT_URI": f"s3://{ARTIFACTS}/code/emr/inference_features.py",
        "EMR_PY_FILES_URI": f"s3://{ARTIFACTS}/code/emr/emr_steps.zip",
        "WORKLOAD_CODE_URI": f"s3://{ARTIFACTS}/code/workload/clickstream.zip",
        "FEATURES_ARGUMENTS": json.dumps(["--workload-module", "features", "--id-column", "event_id"]),
        "INFERENCE_FEATURES_ARGUMENTS": json.dumps(["--workload-module", "features"]),
        "DEFAULT_CANDIDATES": json.dumps(DEFAULT_CANDIDATES),
        "MAX_CANDIDATES": "4",
        "MODEL_PACKAGE_GROUP": GROUP,
        "QUALITY_GATE_MIN_AUC": "0.7",
        "CODE_VERSION": "0123abc",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("SAMPLE_ROWS", raising=False)
    return env


@pytest.fixture(scope="module")
def moto_session() -> Iterator[tuple[Any, Any, Any]]:
    """One moto mock per test module, with its S3 and SageMaker clients (creating clients is the slow part
    of a moto test); each test resets moto's state. The handlers' cached clients are created inside it."""
    with mock_aws() as mock:
        aws.reset_clients()
        yield (
            mock,
            boto3.client("s3", region_name="us-east-1"),
            boto3.client("sagemaker", region_name="us-east-1"),
        )
    aws.reset_clients()


@pytest.fixture
def s3(lambda_env: dict[str, str], moto_session: tuple[Any, Any, Any]) -> Any:
    """A moto S3 client, fresh state, with the three project buckets and a foreign one."""
    mock, client, _ = moto_session
    mock.reset()
    for bucket in (RAW, CURATED, ARTIFACTS, "someone-elses-bucket"):
        client.create_bucket(Bucket=bucket)
    return client


@pytest.fixture
def sagemaker(s3: Any, moto_session: tuple[Any, Any, Any]) -> Any:
    """A moto SageMaker client with the model package group (the stack creates it in AWS)."""
    client = moto_session[2]
    client.create_model_package_group(ModelPackageGroupName=GROUP, ModelPackageGroupDescription="test")
    return client


class Store:
    """Test-side reads and writes of the moto S3."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        response = self.client.list_objects_v2(Bucket=bucket, Prefix=prefix)
        return sorted(obj["Key"] for obj in response.get("Contents", []))

    def get_json(self, uri: str) -> Any:
        bucket, _, key = uri[len("s3://") :].partition("/")
        return json.loads(self.client.get_object(Bucket=bucket, Key=key)["Body"].read())

    def put(self, uri: str, body: bytes) -> None:
        bucket, _, key = uri[len("s3://") :].partition("/")
        self.client.put_object(Bucket=bucket, Key=key, Body=body)


@pytest.fixture
def store(s3: Any) -> Store:
    return Store(s3)


@pytest.fixture
def planned(s3: Any, store: Store) -> Callable[..., dict[str, Any]]:
    """Plan a run through the preprocessing domain function; returns the plan document."""
    from preprocessing.plan import PlanSettings, plan_run

    def plan(**execution_input: Any) -> dict[str, Any]:
        document = {"raw_uri": f"s3://{RAW}/events/", **execution_input}
        payload = plan_run(s3, document, PlanSettings.from_env())
        plan_document: dict[str, Any] = store.get_json(payload["plan_uri"])
        return plan_document

    return plan


# A tiny portable model: logit = 2 * x + embedding[c], embedding = [[0.0], [0.0]] so the score is
# sigmoid(2x) and the ranking follows x. Used by the training (select) and inference tests.
MODEL_SPEC = {
    "format": "mlpipe.model.v1",
    "numeric_features": ["x"],
    "categorical_features": [{"name": "c", "buckets": 2, "dim": 1}],
    "layers": [{"weight": "dense0.weight", "bias": "dense0.bias", "activation": "none"}],
    "output": "sigmoid",
}
MODEL_WEIGHTS = {
    "embedding.c": np.zeros((2, 1), dtype=np.float32),
    "dense0.weight": np.array([[2.0, 1.0]], dtype=np.float32),
    "dense0.bias": np.zeros(1, dtype=np.float32),
}


def npz_bytes(arrays: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@pytest.fixture
def put_candidate(store: Store) -> Callable[..., None]:
    """Write what a finished training job leaves: metrics.json (or `raw_metrics` bytes) and model/."""

    def put(
        plan: dict[str, Any],
        name: str,
        auc: float | None,
        *,
        raw_metrics: bytes | None = None,
        model: bool = True,
    ) -> None:
        prefix = f"{plan['uris']['candidates']}{name}/"
        if raw_metrics is not None:
            store.put(prefix + "metrics.json", raw_metrics)
        elif auc is not None:
            metrics = {
                "format": "mlpipe.training_metrics.v1",
                "validation_auc": auc,
                "validation_log_loss": 0.5,
                "epochs": 3,
            }
            store.put(prefix + "metrics.json", json.dumps(metrics).encode())
        if model:
            store.put(prefix + "model/model.json", json.dumps(MODEL_SPEC).encode())
            store.put(prefix + "model/weights.npz", npz_bytes(MODEL_WEIGHTS))

    return put


# Test split in two shards. Scores follow x: the positives (x = 0.5, 2, 0) outrank 2, 3 and 2 of the
# three negatives (x = -2, -1, 1): AUC = 7/9 on all six rows; 2/3 on the first shard; 5/6 on five rows.
TEST_SHARDS = [
    {"x": [-2.0, -1.0, 0.5, 1.0], "c": [0, 1, 0, 1], "label": [0, 0, 1, 0]},
    {"x": [2.0, 0.0], "c": [1, 0], "label": [1, 1]},
]


def parquet_bytes(columns: dict[str, list[Any]]) -> bytes:
    table = pa.table(
        {
            "event_id": pa.array([f"e{i}" for i in range(len(columns["label"]))]),
            "x": pa.array(columns["x"], pa.float32()),
            "c": pa.array(columns["c"], pa.int32()),
            "label": pa.array(columns["label"], pa.int8()),
        }
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


@pytest.fixture
def put_features(store: Store) -> Callable[..., None]:
    """Write the feature manifest and test shards of a planned run (train/validation shards listed only)."""

    def put(plan: dict[str, Any], shards: list[dict[str, list[Any]]] | None = None) -> None:
        features = plan["uris"]["features"]
        listed = []
        for index, columns in enumerate(TEST_SHARDS if shards is None else shards):
            uri = f"{features}test/part-{index:05d}.parquet"
            body = parquet_bytes(columns)
            store.put(uri, body)
            listed.append({"uri": uri, "rows": len(columns["label"]), "bytes": len(body)})
        manifest = {
            "format": "mlpipe.features.v1",
            "run_id": plan["run_id"],
            "created_at": "2026-11-21T06:00:00Z",
            "id_column": "event_id",
            "label_column": "label",
            "numeric_features": ["x"],
            "categorical_features": [{"name": "c", "buckets": 2}],
            "splits": {
                "train": {"rows": 0, "shards": []},
                "validation": {"rows": 0, "shards": []},
                "test": {"rows": sum(s["rows"] for s in listed), "shards": listed},
            },
            "statistics": {},
            "split_boundaries": {},
        }
        store.put(plan["uris"]["manifest"], json.dumps(manifest).encode())

    return put
