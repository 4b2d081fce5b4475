"""Lambda handler of the Plan state (`preprocessing.handler.handler`): event = the execution input."""

from __future__ import annotations

from typing import Any

from mlpipe_common import aws
from mlpipe_common.logs import lambda_entry

from preprocessing.plan import PlanSettings, plan_run


@lambda_entry
def handler(event: Any, context: Any) -> dict[str, Any]:
    return plan_run(aws.client("s3"), event, PlanSettings.from_env())
