"""RegisterModel: one model package per run in the SageMaker model package group (moto)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from mlpipe_common.errors import RegistrationRefused
from training.handler import handler
from training.register import client_token


@pytest.fixture
def evaluated(
    planned: Callable[..., dict[str, Any]], put_candidate: Callable[..., None], store: Any
) -> Callable[..., dict[str, Any]]:
    """A run planned, trained (two candidates), selected, with an evaluation.json; returns the
    RegisterModel event."""

    def make(run_id: str, /, *, passed: bool = True, **evaluation: Any) -> dict[str, Any]:
        plan = planned(run_id=run_id)
        put_candidate(plan, "small", 0.83)
        put_candidate(plan, "large", 0.88)
        selected = handler(
            {"action": "select", "plan_uri": plan["uris"]["plan"], "candidates": ["small", "large"]}, None
        )
        document = {
            "format": "mlpipe.evaluation.v2",
            "run_id": run_id,
            "model_uri": selected["model_uri"],
            "metrics_uri": f"{plan['uris']['evaluation_output']}metrics.json",
            "metric": "auc",
            "direction": "maximize",
            "value": 0.86,
            "rows": 1000,
            "threshold": 0.7,
            "passed": passed,
            **evaluation,
        }
        store.put(plan["uris"]["evaluation"], json.dumps(document).encode())
        return {
            "action": "register",
            "plan_uri": plan["uris"]["plan"],
            "model_manifest_uri": selected["model_manifest_uri"],
            "evaluation_uri": plan["uris"]["evaluation"],
        }

    return make


def packages(sagemaker: Any, group: str) -> list[dict[str, Any]]:
    return sagemaker.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]


def test_register_creates_one_package_with_metrics_and_lineage(
    sagemaker: Any, evaluated: Callable[..., dict[str, Any]], lambda_env: dict[str, str]
) -> None:
    event = evaluated("reg-1")
    payload = handler(event, None)
    assert set(payload) == {"model_package_arn"}
    (summary,) = packages(sagemaker, lambda_env["MODEL_PACKAGE_GROUP"])
    assert summary["ModelPackageArn"] == payload["model_package_arn"]
    described = sagemaker.describe_model_package(ModelPackageName=payload["model_package_arn"])
    assert described["ModelPackageGroupName"] == lambda_env["MODEL_PACKAGE_GROUP"]
    assert described["ModelApprovalStatus"] == "PendingManualApproval"
    assert described["ModelMetrics"]["ModelQuality"]["Statistics"] == {
        "ContentType": "application/json",
        "S3Uri": event["evaluation_uri"],
    }
    metadata = described["CustomerMetadataProperties"]
    artifacts = lambda_env["ARTIFACTS_BUCKET"]
    assert metadata["mlpipe:run_id"] == "reg-1"
    assert metadata["mlpipe:best_candidate"] == "large"
    assert metadata["mlpipe:model_uri"] == f"s3://{artifacts}/runs/clicks/reg-1/candidates/large/model/"
    assert metadata["mlpipe:metric"] == "auc:maximize"
    assert metadata["mlpipe:validation_auc"] == "0.88" and metadata["mlpipe:test_auc"] == "0.86"
    assert metadata["mlpipe:test_rows"] == "1000" and metadata["mlpipe:quality_gate"] == "0.7"
    assert metadata["mlpipe:evaluation_metrics_uri"].endswith("/runs/clicks/reg-1/evaluation/metrics.json")
    assert metadata["mlpipe:code_version"] == "0123abc"
    assert metadata["mlpipe:raw_uri"] == f"s3://{lambda_env['RAW_BUCKET']}/events/"
    assert metadata["mlpipe:training_input_uri"].endswith("/features/clicks/reg-1/manifest.json")
    assert described["MetadataProperties"] == {
        "CommitId": "0123abc",
        "GeneratedBy": "mlpipe",
        "ProjectId": "reg-1",
    }
    assert described["ModelPackageDescription"].startswith("mlpipe run reg-1: candidate large")


def test_register_is_idempotent_per_run(
    sagemaker: Any, evaluated: Callable[..., dict[str, Any]], lambda_env: dict[str, str]
) -> None:
    group = lambda_env["MODEL_PACKAGE_GROUP"]
    first_event = evaluated("reg-1")
    first = handler(first_event, None)
    other = handler(evaluated("reg-10"), None)  # a run id that extends the first one's is another run
    again = handler(first_event, None)
    assert again == first
    assert other != first
    assert len(packages(sagemaker, group)) == 2


def test_client_token_is_deterministic_and_valid() -> None:
    token = client_token("group", "run-1")
    assert token == client_token("group", "run-1") != client_token("group", "run-2")
    assert 1 <= len(token) <= 36 and token.isalnum()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"passed": False}, "records a failed quality gate"),
        ({"model_uri": "s3://x/other/model/"}, "not the chosen model"),
        ({"run_id": "another-run"}, "must both belong to run 'reg-2'"),
        ({"metric": "rmse"}, "must both report the workload's metric 'auc'"),
    ],
)
def test_register_refuses_unpassed_or_mismatched_evaluations(
    overrides: dict[str, Any],
    message: str,
    sagemaker: Any,
    evaluated: Callable[..., dict[str, Any]],
    lambda_env: dict[str, str],
) -> None:
    event = evaluated("reg-2", **overrides)
    with pytest.raises(RegistrationRefused, match=message):
        handler(event, None)
    assert packages(sagemaker, lambda_env["MODEL_PACKAGE_GROUP"]) == []


def test_metadata_rules_are_sagemakers() -> None:
    """The limits come from botocore's SageMaker model: a value CreateModelPackage would refuse is refused
    first, naming the entry."""
    import botocore.session
    from training.register import (
        METADATA_ENTRIES_MAX,
        METADATA_KEY_MAX,
        METADATA_VALUE_MAX,
        check_metadata,
    )

    shape = botocore.session.get_session().get_service_model("sagemaker").shape_for("CustomerMetadataMap")
    assert (shape.metadata["max"], shape.key.metadata["max"], shape.value.metadata["max"]) == (
        METADATA_ENTRIES_MAX,
        METADATA_KEY_MAX,
        METADATA_VALUE_MAX,
    )
    check_metadata({"mlpipe:metric": "rmse:minimize", "mlpipe:raw_uri": "s3://raw-1/team a/x=1/"})
    for properties, message in (
        ({"mlpipe:metric": "rmse (minimize)"}, r"mlpipe:metric='rmse \(minimize\)' breaks"),
        ({"mlpipe:raw_uri": "s3://raw/" + "a" * 250}, r"mlpipe:raw_uri=.* breaks SageMaker's value rules"),
        ({"mlpipe:x": ""}, "breaks SageMaker's value rules"),
        ({f"k{i}": "v" for i in range(51)}, "51 customer metadata entries"),
    ):
        with pytest.raises(RegistrationRefused, match=message):
            check_metadata(properties)
