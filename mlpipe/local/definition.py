"""The state machine definition as `cdk synth` wrote it, with its references resolved to local names, and
a check that the harness understands every part of it.

The definition is never rewritten: `DefinitionString` (a `Fn::Join` of literal JSON and references) is joined
with each reference resolved, and the result is what moto executes. `unsupported(definition)` lists what the
harness cannot run (an integration it does not intercept and moto does not run, a state type, a query
language); the scenario tests assert that list is empty, so a change in the stack that the harness does not
understand fails a test instead of silently running something else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from mlpipe.local.assembly import CloudAssembly, Stack

# Integrations the harness runs (see moto_patches) or moto runs as they are needed.
SUPPORTED_INTEGRATIONS = frozenset(
    {
        "batch:submitJob.sync",
        "glue:startJobRun.sync",
        "elasticmapreduce:createCluster.sync",
        "elasticmapreduce:addStep.sync",
        "elasticmapreduce:terminateCluster.sync",
        "sns:publish",
    }
)
SUPPORTED_STATE_TYPES = frozenset({"Task", "Pass", "Choice", "Parallel", "Map", "Fail", "Succeed", "Wait"})
_SERVICE_ARN = re.compile(r"^arn:[a-z-]+:states:::(?P<integration>[A-Za-z0-9-]+:[A-Za-z0-9.:]+)$")
_FUNCTION_ARN = re.compile(r"^arn:[a-z-]+:lambda:[a-z0-9-]+:\d{12}:function:(?P<name>[^:]+)$")


@dataclass(frozen=True)
class StateMachineDefinition:
    stack: Stack
    logical_id: str
    definition: Mapping[str, Any]
    role_arn: str

    @property
    def json(self) -> str:
        return json.dumps(self.definition, separators=(",", ":"))

    @classmethod
    def from_assembly(cls, assembly: CloudAssembly) -> StateMachineDefinition:
        stack, logical_id, resource = assembly.only("AWS::StepFunctions::StateMachine")
        props = resource["Properties"]
        text = assembly.resolve(props["DefinitionString"], stack)
        if not isinstance(text, str):
            raise ValueError("DefinitionString did not resolve to a string")
        role = assembly.resolve(props.get("RoleArn", ""), stack)
        return cls(stack=stack, logical_id=logical_id, definition=json.loads(text), role_arn=str(role))


def states(definition: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(path, state) of every state, nested ones (Parallel branches, Map processors) included."""
    for name, state in definition.get("States", {}).items():
        here = f"{path}/{name}" if path else name
        yield here, state
        for index, branch in enumerate(state.get("Branches", [])):
            yield from states(branch, f"{here}[{index}]")
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            yield from states(processor, f"{here}[item]")


def integrations(definition: Mapping[str, Any]) -> dict[str, str]:
    """Task path -> integration (`service:action[.pattern]`, or `lambda-function:<name>`)."""
    found = {}
    for path, state in states(definition):
        if state.get("Type") != "Task":
            continue
        resource = str(state.get("Resource", ""))
        if match := _SERVICE_ARN.match(resource):
            found[path] = match.group("integration")
        elif match := _FUNCTION_ARN.match(resource):
            found[path] = f"lambda-function:{match.group('name')}"
        else:
            found[path] = resource
    return found


def unsupported(definition: Mapping[str, Any], *, functions: set[str]) -> list[str]:
    """What in `definition` the harness cannot run; empty when it can run all of it.

    `functions`: names of the Lambda functions the harness can invoke.
    """
    problems = []
    if definition.get("QueryLanguage", "JSONPath") != "JSONPath":
        problems.append(f"QueryLanguage {definition['QueryLanguage']} (the harness is tested with JSONPath)")
    for path, state in states(definition):
        kind = state.get("Type")
        if kind not in SUPPORTED_STATE_TYPES:
            problems.append(f"{path}: state type {kind}")
        if state.get("QueryLanguage", "JSONPath") != "JSONPath":
            problems.append(f"{path}: QueryLanguage {state['QueryLanguage']}")
        processor = state.get("ItemProcessor", {}).get("ProcessorConfig", {})
        if kind == "Map" and processor.get("Mode", "INLINE") != "INLINE":
            problems.append(f"{path}: Map mode {processor.get('Mode')} (only INLINE)")
        if kind == "Task" and ("HeartbeatSeconds" in state or "HeartbeatSecondsPath" in state):
            problems.append(f"{path}: heartbeats")
    for path, integration in integrations(definition).items():
        if integration.startswith("lambda-function:"):
            if integration.split(":", 1)[1] not in functions:
                problems.append(
                    f"{path}: Lambda function {integration.split(':', 1)[1]} is not in the assembly"
                )
        elif integration not in SUPPORTED_INTEGRATIONS:
            problems.append(f"{path}: integration {integration}")
    return problems
