"""RegisterModel: register the chosen model as a version of the SageMaker model package group, with its
metrics (ModelMetrics -> evaluation.json, which points at the evaluation job's own metrics.json) and lineage
(customer metadata properties).

Idempotent per run: the group's versions are searched for one whose customer metadata `mlpipe:run_id`
is this run; if found its ARN is returned and nothing is created. The create call also carries a
ClientToken derived from the group and the run id, so two concurrent calls (a retry racing the first
attempt) are deduplicated by SageMaker itself. The new version is `PendingManualApproval`: passing the
quality gate makes a model a candidate for deployment; a person approves it."""

from __future__ import annotations

import hashlib
from typing import Any

from mlpipe_common.errors import ModelArtifactError, RegistrationRefused
from mlpipe_common.logs import get_logger
from mlpipe_common.metric import Metric
from mlpipe_common.run_plan import training_input
from mlpipe_common.s3 import S3Uri, read_json_object

APPROVAL_STATUS = "PendingManualApproval"
# SageMaker's CustomerMetadataMap (botocore's service model): at most 50 entries; keys of 1 to 128 and values
# of 1 to 256 letters, digits, separators and _ . : / = + - @.
METADATA_ENTRIES_MAX, METADATA_KEY_MAX, METADATA_VALUE_MAX = 50, 128, 256
METADATA_PUNCTUATION = frozenset(" _.:/=+-@")
log = get_logger(__name__)


def client_token(group: str, run_id: str) -> str:
    """SageMaker ClientToken: 1 to 36 of [a-zA-Z0-9-]."""
    return hashlib.sha256(f"{group}/{run_id}".encode()).hexdigest()[:32]


def description(run_id: str, manifest: dict[str, Any], evaluation: dict[str, Any], metric: Metric) -> str:
    return (
        f"mlpipe run {run_id}: candidate {manifest['best_candidate']}, "
        f"validation {metric.name} {manifest['validation']:.6g}, test {metric.name} {evaluation['value']:.6g}"
    )


def find_package(sagemaker: Any, group: str, run_id: str) -> str | None:
    """The ARN of the group's version registered for `run_id`, or None."""
    marker = f"mlpipe run {run_id}:"
    paginator = sagemaker.get_paginator("list_model_packages")
    pages = paginator.paginate(ModelPackageGroupName=group, SortBy="CreationTime", SortOrder="Descending")
    for page in pages:
        for summary in page.get("ModelPackageSummaryList", []):
            if not summary.get("ModelPackageDescription", "").startswith(marker):
                continue
            arn: str = summary["ModelPackageArn"]
            described = sagemaker.describe_model_package(ModelPackageName=arn)
            if described.get("CustomerMetadataProperties", {}).get("mlpipe:run_id") == run_id:
                return arn
    return None


def _read(s3: Any, uri: S3Uri, what: str) -> dict[str, Any]:
    return read_json_object(s3, uri, what, ModelArtifactError)


def metadata(
    plan: dict[str, Any],
    manifest: dict[str, Any],
    evaluation: dict[str, Any],
    uris: dict[str, str],
    metric: Metric,
) -> dict[str, str]:
    lineage = manifest.get("lineage", {})
    properties = {
        "mlpipe:run_id": plan["run_id"],
        "mlpipe:best_candidate": manifest["best_candidate"],
        "mlpipe:model_uri": manifest["model_uri"],
        "mlpipe:model_manifest_uri": uris["model_manifest"],
        "mlpipe:evaluation_uri": uris["evaluation"],
        "mlpipe:evaluation_metrics_uri": str(evaluation.get("metrics_uri", "")),
        "mlpipe:plan_uri": plan["uris"]["plan"],
        "mlpipe:raw_uri": plan["raw_uri"],
        "mlpipe:training_input_uri": training_input(plan),
        "mlpipe:code_version": str(lineage.get("code_version", "unknown")),
        "mlpipe:metric": f"{metric.name}:{metric.direction}",
        f"mlpipe:validation_{metric.name}": f"{manifest['validation']:.6g}",
        f"mlpipe:test_{metric.name}": f"{evaluation['value']:.6g}",
        "mlpipe:quality_gate": f"{evaluation['threshold']:.6g}",
    }
    if isinstance(evaluation.get("rows"), int):
        properties["mlpipe:test_rows"] = str(evaluation["rows"])
    check_metadata(properties)
    return properties


def _allowed(text: str, longest: int) -> bool:
    return 1 <= len(text) <= longest and all(c.isalnum() or c in METADATA_PUNCTUATION for c in text)


def check_metadata(properties: dict[str, str]) -> None:
    """SageMaker's rules for customer metadata, checked before the call: one line naming the entry."""
    if len(properties) > METADATA_ENTRIES_MAX:
        raise RegistrationRefused(f"{len(properties)} customer metadata entries, over {METADATA_ENTRIES_MAX}")
    for key, value in properties.items():
        if not _allowed(key, METADATA_KEY_MAX):
            raise RegistrationRefused(f"customer metadata key {key!r} breaks SageMaker's key rules")
        if not _allowed(value, METADATA_VALUE_MAX):
            raise RegistrationRefused(
                f"customer metadata {key}={value!r} breaks SageMaker's value rules (1 to {METADATA_VALUE_MAX} "
                "letters, digits, spaces and _.:/=+-@)"
            )


def register_model(
    s3: Any,
    sagemaker: Any,
    plan: dict[str, Any],
    *,
    model_manifest_uri: S3Uri,
    evaluation_uri: S3Uri,
    group: str,
    metric: Metric,
) -> dict[str, Any]:
    """Register the run's model (or find the version already registered); return the RegisterModel payload."""
    run_id = plan["run_id"]
    manifest = _read(s3, model_manifest_uri, "model manifest")
    evaluation = _read(s3, evaluation_uri, "evaluation")
    if manifest.get("run_id") != run_id or evaluation.get("run_id") != run_id:
        raise RegistrationRefused(
            f"the model manifest ({manifest.get('run_id')!r}) and evaluation ({evaluation.get('run_id')!r}) "
            f"must both belong to run {run_id!r}"
        )
    if evaluation.get("passed") is not True:
        raise RegistrationRefused(
            f"{evaluation_uri} records a failed quality gate; the model is not registered"
        )
    if evaluation.get("metric") != metric.name or manifest.get("metric", {}).get("name") != metric.name:
        raise RegistrationRefused(
            f"the model manifest and {evaluation_uri} must both report the workload's metric {metric.name!r}"
        )
    if evaluation.get("model_uri") != manifest.get("model_uri"):
        raise RegistrationRefused(
            f"{evaluation_uri} evaluated {evaluation.get('model_uri')}, "
            f"not the chosen model {manifest.get('model_uri')}"
        )

    existing = find_package(sagemaker, group, run_id)
    if existing:
        log.info(
            "model already registered for this run", extra={"run_id": run_id, "model_package_arn": existing}
        )
        return {"model_package_arn": existing}

    uris = {"model_manifest": str(model_manifest_uri), "evaluation": str(evaluation_uri)}
    response = sagemaker.create_model_package(
        ModelPackageGroupName=group,
        ModelPackageDescription=description(run_id, manifest, evaluation, metric),
        ModelApprovalStatus=APPROVAL_STATUS,
        ClientToken=client_token(group, run_id),
        MetadataProperties={
            "CommitId": str(manifest.get("lineage", {}).get("code_version", "unknown")),
            "GeneratedBy": "mlpipe",
            "ProjectId": run_id,
        },
        ModelMetrics={
            "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": str(evaluation_uri)}}
        },
        CustomerMetadataProperties=metadata(plan, manifest, evaluation, uris, metric),
    )
    arn: str = response["ModelPackageArn"]
    log.info("model registered", extra={"run_id": run_id, "model_package_arn": arn})
    return {"model_package_arn": arn}
