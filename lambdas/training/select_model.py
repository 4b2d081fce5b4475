"""SelectModel: read each candidate's metrics.json, choose the best by validation AUC and write the model
manifest `runs/<run_id>/model/manifest.json`.

The validation AUC is read from `metrics.json` as the top-level `validation_auc` (what the training
container writes, `mlpipe.training_metrics.v1`) or, failing that, as `{"validation": {"auc": x}}`.
Ties are broken by candidate name (the lexicographically smallest wins), so the choice does not depend on
the order in which the Map state returns the candidates."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlpipe_common.errors import CandidateMetricsError, InvalidInput, ModelArtifactError
from mlpipe_common.s3 import S3ObjectNotFound, S3Uri, exists, put_json_atomic, read_json

from training.expand import candidate_prefix

MANIFEST_FORMAT = "mlpipe.model_manifest.v1"
# The files of a portable model (mlpipe_common.portable_model), named here so that this function does not
# import numpy for two names.
MODEL_FILES = ("model.json", "weights.npz")


@dataclass(frozen=True)
class CandidateResult:
    name: str
    validation_auc: float
    metrics: dict[str, Any]
    metrics_uri: str
    model_uri: str


def validation_auc(metrics: Any) -> float | None:
    """The validation AUC in a metrics.json document, or None when absent or not a number in [0, 1]."""
    if not isinstance(metrics, dict):
        return None
    value = metrics.get("validation_auc")
    validation = metrics.get("validation")
    if value is None and isinstance(validation, dict):
        value = validation.get("auc")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) and 0.0 <= value <= 1.0 else None


def read_candidate(s3: Any, plan: dict[str, Any], name: str) -> CandidateResult:
    prefix = S3Uri.parse(candidate_prefix(plan, name))
    metrics_uri = prefix.join("metrics.json")
    try:
        metrics = read_json(s3, metrics_uri)
    except S3ObjectNotFound as exc:
        raise CandidateMetricsError(f"candidate {name!r}: {exc}; did its training job fail?") from None
    except ValueError as exc:
        raise CandidateMetricsError(f"candidate {name!r}: {exc}") from None
    auc = validation_auc(metrics)
    if auc is None:
        raise CandidateMetricsError(
            f"candidate {name!r}: {metrics_uri} has no validation AUC in [0, 1] "
            "(expected validation_auc or validation.auc)"
        )
    return CandidateResult(name, auc, metrics, str(metrics_uri), str(prefix.join("model/")))


def best(results: list[CandidateResult]) -> CandidateResult:
    """Highest validation AUC; ties go to the smallest name."""
    return min(results, key=lambda r: (-r.validation_auc, r.name))


def select_model(
    s3: Any, plan: dict[str, Any], names: list[str], *, code_version: str, now: datetime | None = None
) -> dict[str, Any]:
    """Choose the best candidate, write the model manifest and return the SelectModel payload."""
    planned = [c["name"] for c in plan["candidates"]]
    unknown = sorted(set(names) - set(planned))
    if unknown:
        raise InvalidInput(f"event.candidates: {unknown} are not candidates of run {plan['run_id']!r}")
    if len(set(names)) != len(names):
        raise InvalidInput(f"event.candidates: duplicate names in {names}")
    results = [read_candidate(s3, plan, name) for name in names]
    chosen = best(results)
    model = S3Uri.parse(chosen.model_uri)
    for filename in MODEL_FILES:
        if not exists(s3, model.join(filename)):
            raise ModelArtifactError(
                f"candidate {chosen.name!r} has the best validation AUC "
                f"but {model.join(filename)} does not exist"
            )
    hyperparameters = next(
        c.get("hyperparameters", {}) for c in plan["candidates"] if c["name"] == chosen.name
    )
    manifest_uri = S3Uri.parse(plan["uris"]["model_manifest"])
    manifest = {
        "format": MANIFEST_FORMAT,
        "run_id": plan["run_id"],
        "created_at": (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "best_candidate": chosen.name,
        "model_uri": chosen.model_uri,
        "model_format": "mlpipe.model.v1",
        "validation_auc": chosen.validation_auc,
        "metrics": chosen.metrics,
        "metrics_uri": chosen.metrics_uri,
        "hyperparameters": hyperparameters,
        "leaderboard": [
            {"name": r.name, "validation_auc": r.validation_auc, "metrics_uri": r.metrics_uri}
            for r in sorted(results, key=lambda r: (-r.validation_auc, r.name))
        ],
        "lineage": {
            "run_id": plan["run_id"],
            "plan_uri": plan["uris"]["plan"],
            "raw_uri": plan["raw_uri"],
            "curated_events_uri": plan["uris"]["curated_events"],
            "features_manifest_uri": plan["uris"]["manifest"],
            "code_version": code_version,
        },
    }
    put_json_atomic(s3, manifest_uri, manifest)
    return {
        "model_manifest_uri": str(manifest_uri),
        "model_uri": chosen.model_uri,
        "best_candidate": chosen.name,
        "validation_auc": chosen.validation_auc,
    }
