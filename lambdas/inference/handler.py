"""Lambda handler of the EvaluateModel state (`inference.handler.handler`, action `evaluate`)."""

from __future__ import annotations

from typing import Any

from mlpipe_common import aws
from mlpipe_common.config import Buckets, float_env, int_env
from mlpipe_common.errors import InvalidInput
from mlpipe_common.logs import lambda_entry
from mlpipe_common.run_plan import artifacts_uri, load_plan, require_str

from inference.evaluate import evaluate_model

DEFAULT_SAMPLE_ROWS = 20_000


@lambda_entry
def handler(event: Any, context: Any) -> dict[str, Any]:
    action = require_str(event, "action")
    if action != "evaluate":
        raise InvalidInput(f"event.action must be 'evaluate', not {action!r}")
    buckets = Buckets.from_env()
    min_auc = float_env("QUALITY_GATE_MIN_AUC", minimum=0.0, maximum=1.0)
    max_rows = int_env("SAMPLE_ROWS", DEFAULT_SAMPLE_ROWS, minimum=1, maximum=1_000_000)
    s3 = aws.client("s3")
    return evaluate_model(
        s3,
        load_plan(s3, event, buckets),
        artifacts_uri(event, "model_manifest_uri", buckets),
        buckets=buckets,
        default_min_auc=min_auc,
        max_rows=max_rows,
    )
