"""Lambda handler of the QualityGate state (`inference.handler.handler`, action `gate`)."""

from __future__ import annotations

import math
from typing import Any

from mlpipe_common import aws
from mlpipe_common.config import Buckets, float_env
from mlpipe_common.errors import InvalidInput
from mlpipe_common.logs import lambda_entry
from mlpipe_common.metric import Metric
from mlpipe_common.run_plan import artifacts_uri, load_plan, require_str

from inference.gate import apply_gate


@lambda_entry
def handler(event: Any, context: Any) -> dict[str, Any]:
    action = require_str(event, "action")
    if action != "gate":
        raise InvalidInput(f"event.action must be 'gate', not {action!r}")
    buckets = Buckets.from_env()
    metric = Metric.from_env()
    default = float_env("METRIC_GATE", minimum=-math.inf, maximum=math.inf)
    s3 = aws.client("s3")
    return apply_gate(
        s3,
        load_plan(s3, event, buckets),
        artifacts_uri(event, "model_manifest_uri", buckets),
        metric=metric,
        default_threshold=default,
    )
