"""Every Task's Parameters in every synthesized state machine, checked against botocore's model of the API that
its integration calls: key names, types, enums and required members, at every level. moto accepts what AWS
would refuse, so this is where a misspelt or misplaced parameter is caught before a deploy.

Step Functions' optimized integrations rename some members (Step Functions developer guide, "Create and manage
Amazon EMR clusters with Step Functions" and "Run AWS Batch workloads with Step Functions"):
- EMR createCluster takes RunJobFlow's request, with Instances.KeepJobFlowAliveWhenNoSteps required and true,
  and no Steps; addStep takes AddJobFlowSteps' with ClusterId for JobFlowId and one Step for Steps;
  terminateCluster takes ClusterId for TerminateJobFlows' JobFlowIds.
- Batch's members are camelCase in its API and PascalCase in Step Functions, at every level.
- SNS Publish's Message may be a JSON object, which Step Functions serializes.
A Lambda task that names its function's ARN as its Resource passes Parameters as the function's payload, which
no API model describes.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import botocore.session
import pytest

pytestmark = pytest.mark.xdist_group("cdk")

# integration (the part of Resource after ":states:::", less ".sync") -> (service, operation, renames)
INTEGRATIONS: dict[str, tuple[str, str, dict[str, str]]] = {
    "sns:publish": ("sns", "Publish", {}),
    "glue:startJobRun": ("glue", "StartJobRun", {}),
    "batch:submitJob": ("batch", "SubmitJob", {}),
    "elasticmapreduce:createCluster": ("emr", "RunJobFlow", {}),
    "elasticmapreduce:addStep": ("emr", "AddJobFlowSteps", {"ClusterId": "JobFlowId", "Step": "Steps"}),
    "elasticmapreduce:terminateCluster": ("emr", "TerminateJobFlows", {"ClusterId": "JobFlowIds"}),
}
PASCAL_CASE = {"batch"}
REF = "REF"  # what a CloudFormation reference in the definition is read as: a value known only at deploy


def _model(service: str) -> Any:
    return botocore.session.get_session().get_service_model(service)


def _operation(resource: str) -> tuple[str, Any, dict[str, str]]:
    if ":states:::" not in resource:  # a Lambda function's ARN: Parameters are its payload, not an API's
        assert resource.startswith("arn:aws:lambda:"), resource
        return "lambda:function", None, {}
    integration = resource.split(":states:::", 1)[1].removesuffix(".sync").removesuffix(".waitForTaskToken")
    if integration.startswith("aws-sdk:"):  # aws-sdk:<service>:<action>, members as the API spells them
        _, service, action = integration.split(":")
        model = _model(service)
        (name,) = [o for o in model.operation_names if o.lower() == action.lower()]
        return integration, model.operation_model(name).input_shape, {}
    service, operation, renames = INTEGRATIONS[integration]
    return integration, _model(service).operation_model(operation).input_shape, renames


def _member_names(shape: Any, pascal: bool) -> dict[str, str]:
    """Parameter name -> the model's member name."""
    return {(m[0].upper() + m[1:] if pascal else m): m for m in shape.members}


def problems(
    value: Any, shape: Any, path: str, *, pascal: bool, renames: Mapping[str, str] = {}
) -> Iterator[str]:
    """What AWS would refuse in `value` as the input `shape`; values given by a JSONPath (`Key.$`) or a
    CloudFormation reference are checked for their key only."""
    if isinstance(value, str) and REF in value and shape.type_name != "string":
        return  # a reference resolves at deploy
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            yield f"{path}: expected an object, got {type(value).__name__}"
            return
        # a renamed member goes by the integration's name only
        names = {k: m for k, m in _member_names(shape, pascal).items() if m not in renames.values()}
        given = set()
        for key, item in value.items():
            dynamic = key.endswith(".$")
            name = key.removesuffix(".$")
            member = renames.get(name, names.get(name))
            if member is None or member not in shape.members:
                yield f"{path}.{name}: not a member of {shape.name} (it has {', '.join(sorted(names))})"
                continue
            given.add(member)
            member_shape = shape.members[member]
            if dynamic:
                continue
            if name in renames and member_shape.type_name == "list":  # one Step for Steps
                member_shape = member_shape.member
            yield from problems(item, member_shape, f"{path}.{name}", pascal=pascal)
        for member in shape.required_members:
            if member not in given:
                yield f"{path}: required member {member} is missing"
    elif kind == "list":
        if not isinstance(value, list):
            yield f"{path}: expected a list, got {type(value).__name__}"
            return
        for i, item in enumerate(value):
            yield from problems(item, shape.member, f"{path}[{i}]", pascal=pascal)
    elif kind == "map":
        if not isinstance(value, dict):
            yield f"{path}: expected an object (map), got {type(value).__name__}"
            return
        for key, item in value.items():
            if not key.endswith(".$"):
                yield from problems(item, shape.value, f"{path}.{key}", pascal=pascal)
    elif kind == "string":
        if not isinstance(value, str):
            yield f"{path}: expected a string, got {type(value).__name__}"
        elif shape.enum and REF not in value and value not in shape.enum:
            yield f"{path}: {value!r} is not one of {', '.join(shape.enum)}"
    elif kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            yield f"{path}: expected an integer, got {value!r}"
    elif kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            yield f"{path}: expected a number, got {value!r}"
    elif kind == "boolean" and not isinstance(value, bool):
        yield f"{path}: expected a boolean, got {value!r}"
    # blob (Lambda's Payload: JSON that Step Functions serializes) and timestamp take what they are given


def task_problems(name: str, state: Mapping[str, Any]) -> list[str]:
    integration, shape, renames = _operation(state["Resource"])
    if shape is None:
        return []
    service = integration.split(":")[1] if integration.startswith("aws-sdk:") else integration.split(":")[0]
    pascal = service in PASCAL_CASE
    parameters = dict(state.get("Parameters", {}))
    found = []
    if integration == "sns:publish" and isinstance(parameters.get("Message"), dict):
        parameters["Message"] = REF + " (serialized by Step Functions)"
    if integration == "elasticmapreduce:createCluster":
        if parameters.get("Instances", {}).get("KeepJobFlowAliveWhenNoSteps") is not True:
            found.append(f"{name}.Instances.KeepJobFlowAliveWhenNoSteps: createCluster needs it true")
        if "Steps" in parameters:
            found.append(f"{name}.Steps: createCluster takes no Steps")
    found += problems(parameters, shape, name, pascal=pascal, renames=renames)
    return found


def _graph(synth: Any, concern: str) -> dict[str, Any]:
    (machine,) = [
        r
        for r in synth.json(concern)["Resources"].values()
        if r["Type"] == "AWS::StepFunctions::StateMachine"
    ]
    resources = synth.json(concern)["Resources"]

    def text(part: Any) -> str:
        if isinstance(part, str):
            return part
        if part == {"Ref": "AWS::Partition"}:
            return "aws"
        target = part.get("Fn::GetAtt", [None])[0]
        if resources.get(target, {}).get("Type") == "AWS::Lambda::Function":
            return f"arn:aws:lambda:{REF}:function:{REF}"
        return REF

    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    return json.loads("".join(text(p) for p in parts))  # type: ignore[no-any-return]


def _tasks(node: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in node["States"].items():
        if state["Type"] == "Task":
            yield name, state
        for branch in state.get("Branches", []):
            yield from _tasks(branch)
        if "ItemProcessor" in state:
            yield from _tasks(state["ItemProcessor"])


@pytest.mark.parametrize("synth_name", ["both", "prod"])
def test_every_tasks_parameters_are_what_its_api_accepts(synth_name: str, request: Any) -> None:
    synth = request.getfixturevalue(synth_name)
    seen = set()
    for concern in (c for c in synth.templates if c.startswith("Workload-")):
        for name, state in _tasks(_graph(synth, concern)):
            seen.add(_operation(state["Resource"])[0])
            assert task_problems(name, state) == [], f"{concern}: {name}"
    # both: transient EMR; prod: the persistent cluster, described through the SDK integration
    expected = {"lambda:function", *INTEGRATIONS}
    if synth_name == "prod":  # the persistent cluster: described, never created or terminated by a run
        expected -= {"elasticmapreduce:createCluster", "elasticmapreduce:terminateCluster"}
        expected.add("aws-sdk:emr:describeCluster")
    assert seen == expected


def _rename(node: dict[str, Any], old: str, new: str) -> None:
    node[new] = node.pop(old)


# One deliberate mistake per integration kind, each one AWS would refuse.
MISTAKES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    (
        "NotifyFailure",
        lambda s: _rename(s["Parameters"], "Subject", "Subjekt"),
        "NotifyFailure.Subjekt: not a",
    ),
    (
        "CleanData",
        lambda s: s["Parameters"].update(Timeout="120"),
        "CleanData.Timeout: expected an integer, got '120'",
    ),
    (
        "TrainSingleNode",  # the API's camelCase, where Step Functions wants PascalCase
        lambda s: _rename(s["Parameters"]["Timeout"], "AttemptDurationSeconds", "attemptDurationSeconds"),
        "TrainSingleNode.Timeout.attemptDurationSeconds: not a member of JobTimeout",
    ),
    (
        "CreateCluster",
        lambda s: s["Parameters"]["Instances"].pop("KeepJobFlowAliveWhenNoSteps"),
        "CreateCluster.Instances.KeepJobFlowAliveWhenNoSteps: createCluster needs it true",
    ),
    (
        "BuildFeatures",
        lambda s: s["Parameters"]["Step"].update(ActionOnFailure="STOP"),
        "BuildFeatures.Step.ActionOnFailure: 'STOP' is not one of",
    ),
    (
        "TerminateCluster",  # the API's name, which the integration does not take
        lambda s: _rename(s["Parameters"], "ClusterId.$", "JobFlowIds.$"),
        "TerminateCluster.JobFlowIds: not a member",
    ),
]


@pytest.mark.parametrize(("state_name", "mutate", "message"), MISTAKES, ids=[m[0] for m in MISTAKES])
def test_a_wrong_parameter_is_caught(
    dev: Any, state_name: str, mutate: Callable[[dict[str, Any]], None], message: str
) -> None:
    state = copy.deepcopy(dict(_tasks(_graph(dev, dev.workload)))[state_name])
    assert task_problems(state_name, state) == []  # as synthesized
    mutate(state)
    found = task_problems(state_name, state)
    assert any(message in line for line in found), found


def test_a_wrong_parameter_of_an_sdk_integration_is_caught(prod: Any) -> None:
    (concern,) = (c for c in prod.templates if c.startswith("Workload-"))
    state = copy.deepcopy(dict(_tasks(_graph(prod, concern)))["DescribePersistentCluster"])
    assert task_problems("DescribePersistentCluster", state) == []
    _rename(state["Parameters"], "ClusterId", "ClusterID")
    assert task_problems("DescribePersistentCluster", state)[0].startswith(
        "DescribePersistentCluster.ClusterID: not a member of DescribeClusterInput"
    )
