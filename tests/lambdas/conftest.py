"""Fixtures of the Lambda tests: `lambdas/` on sys.path, the functions' environment, moto-backed S3 with
the project's three buckets, a SageMaker model package group, and builders for run artifacts."""

from __future__ import annotations

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
from mlpipe_common import aws  # noqa: E402
from moto import mock_aws  # noqa: E402

RAW = "mlpipe-raw-test"
CURATED = "mlpipe-curated-test"
ARTIFACTS = "mlpipe-artifacts-test"
GROUP = "mlpipe-models-test"
WORKLOAD = "clicks"
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
        "WORKLOAD_NAME": WORKLOAD,
        "RAW_PREFIX": "events/",
        "POWERTOOLS_SERVICE_NAME": "mlpipe-test",
        "LOG_LEVEL": "INFO",
        "FEATURES_SCRIPT_URI": f"s3://{ARTIFACTS}/code/emr/build_features.py",
        "INFERENCE_FEATURES_SCRIPT_URI": f"s3://{ARTIFACTS}/code/emr/inference_features.py",
        "EMR_PY_FILES_URI": f"s3://{ARTIFACTS}/code/emr/emr_steps.zip",
        "WORKLOAD_CODE_URI": f"s3://{ARTIFACTS}/code/workload/clickstream.zip",
        "STAGES": json.dumps(["clean", "features"]),
        "FEATURES_ARGUMENTS": json.dumps(["--workload-module", "features", "--id-column", "event_id"]),
        "INFERENCE_FEATURES_ARGUMENTS": json.dumps(["--workload-module", "features"]),
        "DEFAULT_CANDIDATES": json.dumps(DEFAULT_CANDIDATES),
        "MAX_CANDIDATES": "4",
        "MODEL_PACKAGE_GROUP": GROUP,
        "METRIC_NAME": "auc",
        "METRIC_DIRECTION": "maximize",
        "METRIC_GATE": "0.7",
        "CODE_VERSION": "0123abc",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
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
            metrics = {"validation": {"auc": auc, "log_loss": 0.5}, "epochs": 3}
            store.put(prefix + "metrics.json", json.dumps(metrics).encode())
        if model:
            store.put(prefix + "model/weights.bin", b"what the candidate's entrypoint saved")

    return put


@pytest.fixture
def put_evaluation(store: Store) -> Callable[..., str]:
    """Write what the EvaluateModel Batch job commits (its metrics.json, or `raw` bytes); returns the URI."""

    def put(plan: dict[str, Any], test: dict[str, Any] | None = None, *, raw: bytes | None = None) -> str:
        uri = f"{plan['uris']['evaluation_output']}metrics.json"
        store.put(uri, raw if raw is not None else json.dumps({"test": test or {}, "rows": 6}).encode())
        return uri

    return put
