"""Synth-time guards: synth fails, with one clear message, when a run could exceed a limit of AWS.

- A Batch job's container command (the job definition's command with its `Ref::` parameters substituted)
  could exceed the 8,192 characters Batch allows for a container's overrides.
- A state's payload could exceed Step Functions' 256 KiB (the largest follows ExpandCandidates: the execution
  input, which every state keeps, with its candidates, plus the candidate list that ExpandCandidates returns;
  everything else is a handful of S3 pointers).
- One execution could write more than Step Functions' 25,000 history events (each candidate adds a Map
  iteration, and every retry adds events).
- A Lambda's environment could exceed 4 KiB (DEFAULT_CANDIDATES lives there).

The bounds come from the execution-input schema that the preprocessing Lambda enforces
(lambdas/mlpipe_common/execution_input.schema.json) and from the synthesized state graph, so a change to
either is checked again at the next synth.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlpipe.config import ConfigError, MlpipeConfig

BATCH_CONTAINER_OVERRIDE_LIMIT = 8_192
STATE_PAYLOAD_LIMIT = 256 * 1024
HISTORY_EVENT_LIMIT = 25_000
LAMBDA_ENVIRONMENT_LIMIT = 4 * 1024

EXECUTION_INPUT_SCHEMA = (
    Path(__file__).resolve().parents[1] / "lambdas/mlpipe_common/execution_input.schema.json"
)
# Longest run id and candidate name the schema admits; S3 URIs that the Lambdas build from them.
# Printable ASCII without quote and backslash: JSON writes each such character as itself.
JSON_SAFE_STRING_PATTERN = "^[ !#-\\[\\]-~]*$"
# The execution input's S3 URIs: letters, digits and _.=+@-/: only, none of which JSON escapes.
S3_URI_PATTERN = "^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/([A-Za-z0-9_.=+@-]+/)*$"
_NUMBER_CHARS = 24  # the longest JSON number a float prints as, e.g. -1.2345678901234567e-308
_RUN_ID = 48
_NAME = 32
_WORKLOAD = "w" * 32  # a workload name at its longest


class GuardError(ConfigError):
    """A configuration could make a run exceed an AWS limit; the message says which and why."""


def _schema() -> dict[str, Any]:
    return json.loads(EXECUTION_INPUT_SCHEMA.read_text())  # type: ignore[no-any-return]


def _longest_value(schema: Mapping[str, Any], definitions: Mapping[str, Any]) -> int:
    """The longest JSON text a value of this (bounded) schema serializes to; `definitions` resolves `$ref`s."""
    if "$ref" in schema:
        return _longest_value(definitions[schema["$ref"].removeprefix("#/definitions/")], definitions)
    if "anyOf" in schema:
        return max(_longest_value(s, definitions) for s in schema["anyOf"])
    kind = schema.get("type")
    if kind == "number" or kind == "integer":
        return _NUMBER_CHARS
    if kind == "boolean":
        return 5
    if kind == "string":
        if "maxLength" not in schema:
            raise GuardError(f"execution input schema: a string without maxLength is unbounded ({schema})")
        # Outside that pattern, JSON may escape a character as a backslash, "u" and four hex digits.
        per_char = 1 if schema.get("pattern") in (JSON_SAFE_STRING_PATTERN, S3_URI_PATTERN) else 6
        return int(schema["maxLength"]) * per_char + 2
    if kind == "array":
        if "maxItems" not in schema:
            raise GuardError(f"execution input schema: an array without maxItems is unbounded ({schema})")
        return 2 + int(schema["maxItems"]) * (_longest_value(schema["items"], definitions) + 2)
    if kind == "object":
        if schema.get("additionalProperties") is False:  # the named properties, all present
            return 2 + sum(
                len(name) + 4 + _longest_value(value, definitions)
                for name, value in schema.get("properties", {}).items()
            )
        if "maxProperties" not in schema:
            raise GuardError(
                f"execution input schema: an object without maxProperties is unbounded ({schema})"
            )
        name = 64 + 2  # property names match ^[A-Za-z][A-Za-z0-9_]{0,63}$, quoted
        value = _longest_value(schema.get("additionalProperties", {}), definitions)
        return 2 + int(schema["maxProperties"]) * (name + 1 + value + 2)
    raise GuardError(f"execution input schema: cannot bound a value of type {kind!r}")


def longest_hyperparameters_json() -> int:
    """The longest `hyperparameters` JSON string the schema admits (what the container command carries)."""
    definitions = _schema()["definitions"]
    return _longest_value(definitions["candidate"]["properties"]["hyperparameters"], definitions)


def longest_execution_input(max_candidates: int) -> int:
    """The longest execution input the schema admits when the preprocessing Lambda allows `max_candidates`
    candidates (the schema's own maxItems is the deployment setting's upper limit)."""
    schema = _schema()
    properties = dict(schema["properties"])
    properties["candidates"] = {**properties["candidates"], "maxItems": max_candidates}
    return _longest_value({**schema, "properties": properties}, schema["definitions"])


def check_batch_command(job: str, command: Sequence[str], parameter_bounds: Mapping[str, int]) -> int:
    """The longest container command of `job`, its `Ref::` parameters at their longest; fails past the limit."""
    length = 0
    for arg in command:
        if arg.startswith("Ref::"):
            length += parameter_bounds[arg.removeprefix("Ref::")]
        elif "${Token[" in arg:  # resolved at deploy time (the code package's S3 URI): counted long
            length += 256
        else:
            length += len(arg)
    length += len(command)  # separators
    if length > BATCH_CONTAINER_OVERRIDE_LIMIT:
        raise GuardError(
            f"Batch job definition {job}: its command could reach {length} characters with the longest "
            f"parameters the execution input allows, over Batch's {BATCH_CONTAINER_OVERRIDE_LIMIT}; lower the "
            f"bounds of candidates' hyperparameters in {EXECUTION_INPUT_SCHEMA.name}"
        )
    return length


def training_parameter_bounds(bucket_name_length: int) -> dict[str, int]:
    """Longest value of each training job parameter (URIs are built by the Lambdas, see contracts.md)."""
    prefix = len("s3://") + bucket_name_length
    return {
        "input": prefix
        + len(f"/features/{_WORKLOAD}/{'r' * _RUN_ID}/inference_manifest.json"),  # the longest
        "output": prefix + len(f"/runs/{_WORKLOAD}/{'r' * _RUN_ID}/candidates/{'n' * _NAME}/"),
        "checkpoint": prefix + len(f"/checkpoints/{_WORKLOAD}/{'r' * _RUN_ID}/{'n' * _NAME}/"),
        "hyperparameters": longest_hyperparameters_json(),
        "model": prefix + len(f"/runs/{_WORKLOAD}/{'r' * _RUN_ID}/candidates/{'n' * _NAME}/model/"),
    }


def check_candidates_payload(config: MlpipeConfig, bucket_name_length: int) -> int:
    """The largest state payload, after ExpandCandidates: the execution input (Plan keeps it and adds its own
    result), the plan, and every candidate's Batch parameters."""
    bounds = training_parameter_bounds(bucket_name_length)
    per_candidate = 256 + 2 * _NAME + sum(bounds[k] + 32 for k in ("input", "output", "checkpoint"))
    per_candidate += bounds["hyperparameters"] + 32
    plan = 16 * 1024  # run id, a dozen S3 URIs and two spark-submit argv lists: a few KiB, counted generously
    empty_input = longest_execution_input(0)
    fixed = plan + empty_input
    per_candidate += longest_execution_input(1) - empty_input  # the input grows linearly with its candidates
    size = fixed + config.pipeline.max_candidates * per_candidate
    if size > STATE_PAYLOAD_LIMIT:
        most = (STATE_PAYLOAD_LIMIT - fixed) // per_candidate
        raise GuardError(
            f"pipeline.max_candidates: {config.pipeline.max_candidates} candidates could make the "
            f"ExpandCandidates state's payload {-(-size // 1024)} KiB, over Step Functions' 256 KiB; "
            f"at most {most} fit with the hyperparameter bounds of {EXECUTION_INPUT_SCHEMA.name}"
        )
    return size


def _states(graph: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any], bool]]:
    """(name, state, inside_map) for every state, nested ones included."""

    def walk(node: Mapping[str, Any], in_map: bool) -> Iterator[tuple[str, Mapping[str, Any], bool]]:
        for name, state in node["States"].items():
            yield name, state, in_map
            for branch in state.get("Branches", []):
                yield from walk(branch, in_map)
            if "ItemProcessor" in state:
                yield from walk(state["ItemProcessor"], True)
            if "Iterator" in state:
                yield from walk(state["Iterator"], True)

    return walk(graph, False)


def _worst_events(state: Mapping[str, Any]) -> int:
    """History events one visit of a state can write, every retry taken."""
    kind = state["Type"]
    if kind == "Task":
        retries = sum(int(r.get("MaxAttempts", 3)) for r in state.get("Retry", []))
        # Entered, Scheduled, Started, Submitted, Succeeded/Failed, Exited; each retry repeats the middle four.
        return 6 + 4 * retries
    if kind in ("Parallel", "Map"):
        return 4  # Entered, Started, Succeeded/Failed, Exited
    return 2  # Entered, Exited


def check_history(config: MlpipeConfig, graph: Mapping[str, Any]) -> int:
    """Worst-case history events of one execution: every state visited once, the Map once per candidate."""
    fixed = 2  # ExecutionStarted, ExecutionSucceeded/Failed
    per_item = 2  # MapIterationStarted, MapIterationSucceeded
    for _, state, in_map in _states(graph):
        if in_map:
            per_item += _worst_events(state)
        else:
            fixed += _worst_events(state)
    events = fixed + config.pipeline.max_candidates * per_item
    if events > HISTORY_EVENT_LIMIT:
        most = (HISTORY_EVENT_LIMIT - fixed) // per_item
        raise GuardError(
            f"pipeline.max_candidates: {config.pipeline.max_candidates} candidates could write {events} "
            f"history events in one execution, over Step Functions' {HISTORY_EVENT_LIMIT}; at most {most} fit"
        )
    return events


# The failure path's own tasks (notify, then terminate a transient cluster) run after a task's Catch.
FAILURE_PATH = ("NotifyFailure", "TerminateClusterAfterFailure")


def _longest_path(node: Mapping[str, Any], max_items: int) -> int:
    """The longest a run of `node` (a state machine, a branch or a Map's processor) can take along its success
    path when every task takes its whole TimeoutSeconds: a Parallel as its longest branch, a Map as its
    rounds (at most `max_items` items, MaxConcurrency at a time) of its longest item."""
    states = node["States"]
    memo: dict[str, int] = {}

    def own(state: Mapping[str, Any]) -> int:
        if state["Type"] == "Task":
            return int(state["TimeoutSeconds"])
        if state["Type"] == "Parallel":
            return max(_longest_path(b, max_items) for b in state["Branches"])
        if state["Type"] == "Map":
            concurrency = int(state.get("MaxConcurrency") or max_items)
            return -(-max_items // concurrency) * _longest_path(state["ItemProcessor"], max_items)
        return 0

    def longest_from(name: str) -> int:
        if name not in memo:
            memo[name] = 0  # a cycle adds nothing more
            state = states[name]
            after = [
                state.get("Next"),
                state.get("Default"),
                *(c.get("Next") for c in state.get("Choices", [])),
            ]
            memo[name] = own(state) + max((longest_from(n) for n in after if n in states), default=0)
        return memo[name]

    return longest_from(node["StartAt"])


def check_task_timeouts(config: MlpipeConfig, graph: Mapping[str, Any]) -> int:
    """Every Task state has its own TimeoutSeconds, and the execution's TimeoutSeconds outlasts the longest
    run in which every task takes all of its, followed by the failure path (a Map counts its rounds of the
    workload's most candidates): whichever task sticks, its own timeout fires first and the failure goes
    through its Catch (notify, clean up), which an execution timeout would skip. Returns that longest run's
    seconds, failure path included."""
    tasks = [(name, state) for name, state, _ in _states(graph) if state["Type"] == "Task"]
    missing = [name for name, state in tasks if not isinstance(state.get("TimeoutSeconds"), int)]
    if missing:
        raise GuardError(f"pipeline: task state(s) without TimeoutSeconds: {', '.join(missing)}")
    failure_path = sum(state["TimeoutSeconds"] for name, state in tasks if name in FAILURE_PATH)
    longest = _longest_path(graph, config.pipeline.max_candidates) + failure_path
    execution = graph.get("TimeoutSeconds")
    if not isinstance(execution, int) or longest >= execution:
        need = -(-(longest + 1) // 3600)
        raise GuardError(
            f"pipeline.execution_timeout_hours: a run whose every task takes its whole timeout lasts "
            f"{longest / 3600:.1f} h with the failure path, and an execution timeout of "
            f"{(execution or 0) / 3600:g} h would cut it off before the failure is caught: raise it to at least "
            f"{need} (at most 168), or lower the jobs' limits or pipeline.max_candidates"
        )
    return longest


def check_lambda_environment(function: str, environment: Mapping[str, str]) -> int:
    """Lambda refuses an environment over 4 KiB (keys and values together)."""
    size = sum(len(k.encode()) + len(v.encode()) for k, v in environment.items())
    if size > LAMBDA_ENVIRONMENT_LIMIT:
        raise GuardError(
            f"Lambda {function}: its environment would be {size} bytes, over Lambda's 4 KiB "
            "(the workload's candidates are the usual cause: give fewer or smaller default candidates)"
        )
    return size
