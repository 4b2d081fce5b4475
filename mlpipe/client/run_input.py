"""The execution input: read it, validate it against the published schema, and derive its run id.

Validation is the Lambda's (`lambdas/mlpipe_common/execution_input.py`, fastjsonschema on
`execution_input.schema.json`) and runs before any AWS call. The run id is the Plan state's
(`preprocessing.plan`): the input's `run_id`, or one derived from the input resolved with the deployment's
defaults, which are read from the deployed Plan function's environment. The run id names the execution,
so starting the same input twice starts one execution.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlpipe.client import lambda_code
from mlpipe.client.errors import UsageError

# What PlanSettings.from_env reads (preprocessing/plan.py and mlpipe_common/config.py).
PLAN_SETTINGS = (
    "RAW_BUCKET",
    "CURATED_BUCKET",
    "ARTIFACTS_BUCKET",
    "WORKLOAD_NAME",
    "RAW_PREFIX",
    "METRIC_NAME",
    "METRIC_DIRECTION",
    "METRIC_GATE",
    "FEATURES_SCRIPT_URI",
    "INFERENCE_FEATURES_SCRIPT_URI",
    "EMR_PY_FILES_URI",
    "WORKLOAD_CODE_URI",
    "SPARK_DEPENDENCY_URIS",
    "STAGES",
    "FEATURES_ARGUMENTS",
    "INFERENCE_FEATURES_ARGUMENTS",
    "DEFAULT_CANDIDATES",
    "MAX_CANDIDATES",
)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(text: str, *, source: str) -> Any:
    """Parse JSON text; a UsageError that names `source` and the position otherwise."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{source}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except ValueError as exc:
        raise UsageError(f"{source}: {exc}") from None


def read_json_file(path: str, *, stdin_text: str | None = None) -> Any:
    """The JSON document in file `path` ('-': `stdin_text`)."""
    if path == "-":
        return parse_json(stdin_text or "", source="standard input")
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, not a JSON file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot be read: {exc}") from None
    return parse_json(text, source=path)


def validate(document: Any) -> None:
    """Validate against the published schema, as the Plan Lambda does; UsageError naming the field."""
    execution_input = lambda_code.module("mlpipe_common.execution_input")
    errors = lambda_code.module("mlpipe_common.errors")
    try:
        execution_input.validate(document)
    except errors.InvalidInput as exc:
        raise UsageError(str(exc)) from None


def validate_hyperparameters(hyperparameters: Any, *, source: str) -> None:
    """Hyperparameters follow the schema's candidate rules (names, value types, sizes)."""
    execution_input = lambda_code.module("mlpipe_common.execution_input")
    errors = lambda_code.module("mlpipe_common.errors")
    try:
        execution_input.validate(
            {"name": "job", "hyperparameters": hyperparameters}, definition="candidate", where=source
        )
    except errors.InvalidInput as exc:
        raise UsageError(str(exc).replace(f"{source}.hyperparameters", source, 1)) from None


@dataclass(frozen=True)
class ResolvedRun:
    run_id: str
    """The run id: the input's, or derived as the Plan state derives it."""
    derived: bool
    """True when the input gave no run id."""
    resolved_input: dict[str, Any]
    """The input with the deployment's defaults, as the Plan state will record it."""


def resolve(document: dict[str, Any], plan_environment: dict[str, str]) -> ResolvedRun:
    """Resolve the input with the Plan function's settings (its environment) and derive the run id.

    Also runs the Plan state's checks a schema cannot express (URIs in the project's buckets, unique
    candidate names, at most MAX_CANDIDATES): a UsageError, before anything starts.
    """
    plan = lambda_code.module("preprocessing.plan")
    errors = lambda_code.module("mlpipe_common.errors")
    # Every variable the function has (settings added to the Plan code later included), and the known ones
    # emptied when the function lacks them, so this process's own environment never stands in for them.
    names = tuple(sorted(set(PLAN_SETTINGS) | set(plan_environment)))
    with lambda_code.function_environment(plan_environment, names):
        settings = plan.PlanSettings.from_env()
    try:
        given, resolved = plan.resolve_input(document, settings)
    except errors.InvalidInput as exc:
        raise UsageError(str(exc)) from None
    run_id = given or plan.derive_run_id(resolved)
    return ResolvedRun(run_id=str(run_id), derived=given is None, resolved_input=resolved)


def canonical(document: Any) -> str:
    """The execution input as sent: compact, sorted keys, so the same input is the same bytes each time
    (StartExecution is idempotent only for the same name and the same input)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
