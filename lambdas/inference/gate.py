"""QualityGate: compare the evaluation job's figure with the workload's threshold.

The EvaluateModel Batch job runs the workload's own evaluation entrypoint: it loads the selected model as
inference does, scores the held-out test split (rows that selection never saw) and commits
`<evaluation output>/metrics.json` with `{"test": {"<METRIC_NAME>": x}}`. This function reads that figure and
nothing else; a figure that training reports about itself is not a gate. It writes
`runs/<workload>/<run_id>/evaluation.json` either way and raises `QualityGateFailed` when the figure misses the gate, so
the record of why a model was not registered exists while nothing marks it published."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlpipe_common.errors import EvaluationError, InvalidInput, QualityGateFailed
from mlpipe_common.logs import get_logger
from mlpipe_common.metric import Metric, read_figure
from mlpipe_common.s3 import S3Uri, put_json_atomic, read_json_object

EVALUATION_FORMAT = "mlpipe.evaluation.v2"
log = get_logger(__name__)


@dataclass(frozen=True)
class Threshold:
    value: float
    source: str  # "execution_input" or "METRIC_GATE"


def threshold(plan: dict[str, Any], default: float) -> Threshold:
    """The run's override from the execution input, else the workload's gate."""
    override = plan.get("quality_gate")
    if isinstance(override, dict) and "threshold" in override:
        return Threshold(float(override["threshold"]), "execution_input")
    return Threshold(default, "METRIC_GATE")


def _read(s3: Any, uri: S3Uri, what: str) -> dict[str, Any]:
    return read_json_object(s3, uri, what, EvaluationError)


def apply_gate(
    s3: Any,
    plan: dict[str, Any],
    model_manifest_uri: S3Uri,
    *,
    metric: Metric,
    default_threshold: float,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Read the evaluation job's figure, write evaluation.json, apply the gate; return the payload."""
    run_id = plan["run_id"]
    manifest = _read(s3, model_manifest_uri, "model manifest")
    if manifest.get("run_id") != run_id:
        raise InvalidInput(
            f"event.model_manifest_uri: {model_manifest_uri} is not a model manifest of run {run_id!r}"
        )
    metrics_uri = S3Uri.parse(plan["uris"]["evaluation_output"]).join("metrics.json")
    metrics = _read(s3, metrics_uri, "the evaluation job's metrics")
    value = read_figure(metrics, "test", metric.name)
    if value is None:
        raise EvaluationError(
            f"{metrics_uri} has no finite number at test.{metric.name}: the workload's evaluation entrypoint "
            f"must report the metric it is gated on"
        )
    gate = threshold(plan, default_threshold)
    passed = metric.passes(value, gate.value)
    evaluation_uri = S3Uri.parse(plan["uris"]["evaluation"])
    rows = metrics.get("rows")
    put_json_atomic(
        s3,
        evaluation_uri,
        {
            "format": EVALUATION_FORMAT,
            "run_id": run_id,
            "created_at": (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "model_manifest_uri": str(model_manifest_uri),
            "model_uri": manifest.get("model_uri"),
            "best_candidate": manifest.get("best_candidate"),
            "metrics_uri": str(metrics_uri),
            "split": "test",
            "rows": rows if isinstance(rows, int) and not isinstance(rows, bool) else None,
            "metric": metric.name,
            "direction": metric.direction,
            "value": value,
            "threshold": gate.value,
            "threshold_source": gate.source,
            "passed": passed,
        },
    )
    log.info(
        "quality gate applied",
        extra={
            "run_id": run_id,
            "metric": metric.name,
            "value": value,
            "threshold": gate.value,
            "passed": passed,
        },
    )
    if not passed:
        raise QualityGateFailed(
            f"run {run_id}: test {metric.name} {value:.6g} of candidate {manifest.get('best_candidate')!r} misses "
            f"the quality gate {metric.describe_gate(gate.value)} (from {gate.source}); the model is not "
            f"registered. Evaluation: {evaluation_uri}"
        )
    return {"evaluation_uri": str(evaluation_uri), "metric": metric.name, "value": value, "passed": True}
