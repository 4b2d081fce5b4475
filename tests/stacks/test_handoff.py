"""Stacks read each other's values from Parameter Store at each of their deploys (stacks/constructs/handoff.py),
never through stack outputs, which CloudFormation reads only when the reading stack's template changes."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytestmark = pytest.mark.xdist_group("cdk")


def _references(value: Any) -> set[str]:
    """The logical ids that `value` refers to with Ref or Fn::GetAtt (pseudo parameters aside)."""
    if isinstance(value, list):
        return set().union(*map(_references, value)) if value else set()
    if not isinstance(value, dict):
        return set()
    if set(value) == {"Ref"} and not value["Ref"].startswith("AWS::"):
        return {value["Ref"]}
    if set(value) == {"Fn::GetAtt"}:
        return {value["Fn::GetAtt"][0]}
    return set().union(*map(_references, value.values())) if value else set()


@pytest.mark.parametrize("synth_name", ["both", "prod"])
def test_stacks_read_each_others_values_from_parameter_store_at_each_deploy(
    synth_name: str, request: Any
) -> None:
    synth = request.getfixturevalue(synth_name)
    name = synth.config.stack_name
    manifest = json.loads((synth.outdir / "manifest.json").read_text())["artifacts"]
    stored: dict[str, tuple[str, Any]] = {}
    for concern in synth.templates:
        template = synth.json(concern)
        text = json.dumps(template)
        # Outputs are read only when the reader's own template changes (Fn::GetStackOutput's weak reference), or
        # block the producer's replacement (Fn::ImportValue's export in use).
        assert "Fn::GetStackOutput" not in text and "Fn::ImportValue" not in text, concern
        for resource in template["Resources"].values():
            if resource["Type"] == "AWS::SSM::Parameter":
                stored[resource["Properties"]["Name"]] = (concern, resource["Properties"]["Value"])
                # a live reference: a replaced resource changes what the parameter holds at the producer's deploy
                assert _references(resource["Properties"]["Value"]) <= set(template["Resources"]), concern
                assert _references(resource["Properties"]["Value"]), concern

    read = set()
    for concern in synth.templates:
        for key, parameter in synth.json(concern).get("Parameters", {}).items():
            if key == "BootstrapVersion":
                continue
            # "CloudFormation always fetches the latest values from Parameter Store when it updates stacks", and
            # the CDK CLI deploys a stack with such a parameter even when its template is unchanged, unless the
            # parameter's description holds "[cdk:skip]" (the CLI's ParameterValues.hasChanges).
            assert parameter["Type"] == "AWS::SSM::Parameter::Value<String>", (concern, key)
            assert "[cdk:skip]" not in parameter.get("Description", ""), (concern, key)
            producer, _ = stored[parameter["Default"]]
            assert producer != concern
            # ...after the stack that stores it: `cdk deploy --all` deploys dependencies first
            assert name(producer) in manifest[name(concern)]["dependencies"], (concern, producer)
            read.add(parameter["Default"])
    assert read == set(stored)  # nothing is handed over that no stack reads
    assert all(n.startswith(f"/mlpipe/{synth.config.env}/") for n in stored)


def test_a_workloads_stack_reads_the_shared_values_it_uses(dev: Any) -> None:
    """Each value of another stack that the workload's stack uses, and where it comes from."""
    read = {
        parameter["Default"].removeprefix("/mlpipe/dev/"): dev.handed_over(dev.workload, {"Ref": key})
        for key, parameter in dev.json(dev.workload)["Parameters"].items()
        if key != "BootstrapVersion"
    }

    def only(concern: str, resource_type: str) -> str:
        (logical_id,) = dev.template(concern).find_resources(resource_type)
        return str(logical_id)

    queues = dev.template("Batch").find_resources("AWS::Batch::JobQueue")
    assert read.pop("storage/key-arn") == (
        "Storage",
        {"Fn::GetAtt": [only("Storage", "AWS::KMS::Key"), "Arn"]},
    )
    assert read.pop("network/vpc-id") == ("Network", {"Ref": only("Network", "AWS::EC2::VPC")})
    assert read.pop("batch/job-log-group-arn") == (
        "Batch",
        {"Fn::GetAtt": [only("Batch", "AWS::Logs::LogGroup"), "Arn"]},
    )
    spot_first, on_demand = read.pop("batch/spot-first-queue-arn"), read.pop("batch/on-demand-queue-arn")
    assert spot_first == (
        "Batch",
        {"Fn::GetAtt": [next(q for q in queues if "SpotFirst" in q), "JobQueueArn"]},
    )
    assert on_demand == ("Batch", {"Fn::GetAtt": [next(q for q in queues if "OnDemand" in q), "JobQueueArn"]})
    # a transient cluster's subnets: one per availability zone, EMR's workload subnets of the Network stack
    subnets = dev.template("Network").find_resources("AWS::EC2::Subnet")
    assert {read.pop(f"network/workload-subnet-{i}")[1]["Ref"] for i in (1, 2)} <= set(subnets)
    assert read == {}
