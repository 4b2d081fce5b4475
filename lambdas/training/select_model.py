"""SelectModel: read each candidate's metrics.json, choose the best by the workload's validation metric and
write the model manifest `runs/<workload>/<run_id>/model/manifest.json`.

The figure is `{"validation": {"<METRIC_NAME>": x}}` in the candidate's metrics.json (docs/workloads.md);
METRIC_DIRECTION says whether larger or smaller wins. Ties go to the smallest candidate name, so the choice
does not depend on the order in which the Map state returns the candidates. The winner's `model/` prefix must
hold at least one object: what its entrypoint saved for inference and evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlpipe_common.errors import CandidateMetricsError, InvalidInput, ModelArtifactError
from mlpipe_common.metric import Metric, read_figure
from mlpipe_common.run_plan import training_input
from mlpipe_common.s3 import S3ObjectNotFound, S3Uri, has_objects, put_json_atomic, read_json

from training.expand import candidate_prefix

MANIFEST_FORMAT = "mlpipe.model_manifest.v3"  # v3: lineage.training_input_uri


@dataclass(frozen=True)
class CandidateResult:
    name: str
    validation: float
    metrics: dict[str, Any]
    metrics_uri: str
    model_uri: str


def read_candidate(s3: Any, plan: dict[str, Any], name: str, metric: Metric) -> CandidateResult:
    prefix = S3Uri.parse(candidate_prefix(plan, name))
    metrics_uri = prefix.join("metrics.json")
    try:
        metrics = read_json(s3, metrics_uri)
    except S3ObjectNotFound as exc:
        raise CandidateMetricsError(f"candidate {name!r}: {exc}; did its training job fail?") from None
    except ValueError as exc:
        raise CandidateMetricsError(f"candidate {name!r}: {exc}") from None
    value = read_figure(metrics, "validation", metric.name)
    if value is None:
        raise CandidateMetricsError(
            f"candidate {name!r}: {metrics_uri} has no finite number at validation.{metric.name}"
        )
    return CandidateResult(name, value, metrics, str(metrics_uri), str(prefix.join("model/")))


def ranked(results: list[CandidateResult], metric: Metric) -> list[CandidateResult]:
    """Best first; ties by name."""
    return sorted(results, key=lambda r: (metric.rank_key(r.validation), r.name))


def select_model(
    s3: Any,
    plan: dict[str, Any],
    names: list[str],
    *,
    metric: Metric,
    code_version: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Choose the best candidate, write the model manifest and return the SelectModel payload."""
    planned = [c["name"] for c in plan["candidates"]]
    unknown = sorted(set(names) - set(planned))
    if unknown:
        raise InvalidInput(f"event.candidates: {unknown} are not candidates of run {plan['run_id']!r}")
    if len(set(names)) != len(names):
        raise InvalidInput(f"event.candidates: duplicate names in {names}")
    if not names:
        raise InvalidInput("event.candidates: no candidates to choose from")
    leaderboard = ranked([read_candidate(s3, plan, name, metric) for name in names], metric)
    chosen = leaderboard[0]
    if not has_objects(s3, S3Uri.parse(chosen.model_uri)):
        raise ModelArtifactError(
            f"candidate {chosen.name!r} has the best validation {metric.name} but saved nothing under "
            f"{chosen.model_uri}"
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
        "metric": {"name": metric.name, "direction": metric.direction},
        "validation": chosen.validation,
        "metrics": chosen.metrics,
        "metrics_uri": chosen.metrics_uri,
        "hyperparameters": hyperparameters,
        "leaderboard": [
            {"name": r.name, "validation": r.validation, "metrics_uri": r.metrics_uri} for r in leaderboard
        ],
        "lineage": {
            "run_id": plan["run_id"],
            "plan_uri": plan["uris"]["plan"],
            "raw_uri": plan["raw_uri"],
            "curated_uri": plan["uris"].get("curated"),  # none without a clean stage
            "training_input_uri": training_input(plan),
            "code_version": code_version,
        },
    }
    put_json_atomic(s3, manifest_uri, manifest)
    return {
        "model_manifest_uri": str(manifest_uri),
        "model_uri": chosen.model_uri,
        "best_candidate": chosen.name,
        "validation": chosen.validation,
    }
