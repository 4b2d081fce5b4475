"""Lambda handler of the ExpandCandidates, SelectModel and RegisterModel states
(`training.handler.handler`, dispatching on `event.action`: expand, select, register)."""

from __future__ import annotations

import os
from typing import Any

from mlpipe_common import aws
from mlpipe_common.config import Buckets, require_env
from mlpipe_common.errors import InvalidInput
from mlpipe_common.logs import get_logger, lambda_entry
from mlpipe_common.metric import Metric
from mlpipe_common.run_plan import artifacts_uri, load_plan, require_names, require_str

from training.expand import expand_candidates
from training.register import register_model
from training.select_model import select_model

ACTIONS = ("expand", "select", "register")
log = get_logger(__name__)


@lambda_entry
def handler(event: Any, context: Any) -> dict[str, Any]:
    action = require_str(event, "action")
    if action not in ACTIONS:
        raise InvalidInput(f"event.action must be one of {', '.join(ACTIONS)}, not {action!r}")
    buckets = Buckets.from_env()
    s3 = aws.client("s3")
    plan = load_plan(s3, event, buckets)
    if action == "expand":
        return expand_candidates(plan)
    if action == "select":
        return select_model(
            s3,
            plan,
            require_names(event, "candidates"),
            metric=Metric.from_env(),
            code_version=code_version(),
        )
    return register_model(
        s3,
        aws.client("sagemaker"),
        plan,
        model_manifest_uri=artifacts_uri(event, "model_manifest_uri", buckets),
        evaluation_uri=artifacts_uri(event, "evaluation_uri", buckets),
        group=require_env("MODEL_PACKAGE_GROUP"),
        metric=Metric.from_env(),
    )


def code_version() -> str:
    """CODE_VERSION: the digest of the deployed code assets (stacks/constructs/pipeline.py); "unknown" when unset."""
    version = os.environ.get("CODE_VERSION", "").strip()
    if not version:
        log.warning("CODE_VERSION is not set; lineage records the code version as 'unknown'")
    return version or "unknown"
