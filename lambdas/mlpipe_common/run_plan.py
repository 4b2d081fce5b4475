"""Reading a state's payload and the run plan it points to (written by the Plan state)."""

from __future__ import annotations

import re
from typing import Any

from mlpipe_common.config import Buckets
from mlpipe_common.errors import InvalidInput
from mlpipe_common.s3 import S3ObjectNotFound, S3Uri, parse_in_buckets, read_json

PLAN_KEY = re.compile(r"^runs/([a-z][a-z0-9-]*[a-z0-9])/([a-z0-9][a-z0-9-]*[a-z0-9])/plan\.json$")


def require_str(event: Any, key: str) -> str:
    if not isinstance(event, dict):
        raise InvalidInput(f"the event must be a JSON object, not {type(event).__name__}")
    value = event.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"event.{key} must be a non-empty string")
    return value


def require_names(event: Any, key: str) -> list[str]:
    value = event.get(key) if isinstance(event, dict) else None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"event.{key} must be a non-empty list of candidate names")
    return list(value)


def artifacts_uri(event: Any, key: str, buckets: Buckets) -> S3Uri:
    """The S3 URI at `event[key]`, which must be in the artifacts bucket."""
    return parse_in_buckets(require_str(event, key), [buckets.artifacts], field=f"event.{key}")


def load_plan(s3: Any, event: Any, buckets: Buckets) -> dict[str, Any]:
    """The plan at `event.plan_uri` (s3://<artifacts>/runs/<workload>/<run_id>/plan.json) of this pipeline's
    workload."""
    uri = artifacts_uri(event, "plan_uri", buckets)
    match = PLAN_KEY.match(uri.key)
    if not match or match.group(1) != buckets.workload:
        raise InvalidInput(
            f"event.plan_uri: {uri} is not a run plan of workload {buckets.workload!r} "
            f"(runs/{buckets.workload}/<run_id>/plan.json)"
        )
    try:
        plan = read_json(s3, uri)
    except S3ObjectNotFound as exc:
        raise InvalidInput(f"event.plan_uri: {exc}") from None
    if not isinstance(plan, dict) or plan.get("run_id") != match.group(2):
        raise InvalidInput(f"event.plan_uri: {uri} is not a plan of run {match.group(2)!r}")
    return plan


def training_input(plan: dict[str, Any]) -> str:
    """What the run's training read: the feature manifest, or without a feature stage the curated or raw
    data. A plan written before `uris.training_input` existed (a failed run redriven after an update) names
    only the manifest."""
    uris = plan["uris"]
    return str(uris.get("training_input") or uris["manifest"])
