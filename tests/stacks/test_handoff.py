"""Stacks read each other's values from Parameter Store at each of their deploys (stacks/constructs/handoff.py),
never through stack outputs, which CloudFormation reads only when the reading stack's template changes."""

from __future__ import annotations

import json
from pathlib import Path
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
    assert read.pop("batch/job-log-group") == ("Batch", {"Ref": only("Batch", "AWS::Logs::LogGroup")})
    spot_first, on_demand = read.pop("batch/spot-first-queue-arn"), read.pop("batch/on-demand-queue-arn")
    assert spot_first == (
        "Batch",
        {"Fn::GetAtt": [next(q for q in queues if "SpotFirst" in q), "JobQueueArn"]},
    )
    assert on_demand == ("Batch", {"Fn::GetAtt": [next(q for q in queues if "OnDemand" in q), "JobQueueArn"]})
    # a transient cluster's subnets: the Network stack's workload subnets, in availability-zone order
    assert [read.pop(f"network/workload-subnet-{i}") for i in (1, 2)] == [
        ("Network", {"Ref": s}) for s in _workload_subnets(dev)
    ]
    assert read == {}


def _workload_subnets(synth: Any) -> list[str]:
    """The logical ids of the subnets that the Network stack tags for EMR (where EMR and Batch run), in the order
    of their availability zones."""
    tagged = {
        logical_id: r["Properties"]["AvailabilityZone"]["Fn::Select"][0]
        for logical_id, r in synth.json("Network")["Resources"].items()
        if r["Type"] == "AWS::EC2::Subnet"
        and {"Key": "for-use-with-amazon-emr-managed-policies", "Value": "true"} in r["Properties"]["Tags"]
    }
    return sorted(tagged, key=tagged.__getitem__)


def test_prod_runs_batch_and_the_persistent_cluster_in_the_private_subnets(prod: Any) -> None:
    private = _workload_subnets(prod)
    assert len(private) == 2 and all("private" in s for s in private)
    environments = prod.json("Batch")["Resources"].values()
    for environment in (r for r in environments if r["Type"] == "AWS::Batch::ComputeEnvironment"):
        subnets = [
            prod.handed_over("Batch", s) for s in environment["Properties"]["ComputeResources"]["Subnets"]
        ]
        assert subnets in ([("Network", {"Ref": s}) for s in private], [("Network", {"Ref": private[0]})])
    (cluster,) = (r for r in prod.json("Emr")["Resources"].values() if r["Type"] == "AWS::EMR::Cluster")
    fleet_subnets = cluster["Properties"]["Instances"]["Ec2SubnetIds"]
    assert [prod.handed_over("Emr", s) for s in fleet_subnets] == [("Network", {"Ref": s}) for s in private]


def test_the_monitoring_stack_reads_what_is_counted_and_refuses_more_than_cloudformation_allows(
    both: Any,
) -> None:
    import aws_cdk as cdk

    from mlpipe.workload import WorkloadError, load_all
    from stacks.constructs.monitoring import parameters_read
    from stacks.platform import create_platform

    # two workloads with a clean stage each, and the bootstrap version
    assert len(both.json("Monitoring")["Parameters"]) == parameters_read([True, True]) + 1 == 13
    (clickstream,) = load_all(["examples/clickstream"], Path(__file__).resolve().parents[2])
    with pytest.raises(
        WorkloadError, match=r"^workloads: 34 workloads are more than the Monitoring stack can read"
    ):
        create_platform(cdk.App(), both.config, workloads=[clickstream] * 34)


def _producer_and_consumer(config: Any, topic_name: str) -> tuple[str, str]:
    """The templates of a producer whose topic is named `topic_name` and hands its ARN over, and of a consumer
    that stores what it reads (handoff.py's publish and receive, as the platform's stacks use them)."""
    import aws_cdk as cdk
    from aws_cdk import aws_sns as sns
    from aws_cdk import aws_ssm as ssm

    from stacks.constructs.handoff import publish, receive

    app = cdk.App()

    def stack(name: str) -> cdk.Stack:  # no bootstrap stack in moto: no bootstrap version parameter
        return cdk.Stack(
            app, name, synthesizer=cdk.DefaultStackSynthesizer(generate_bootstrap_version_rule=False)
        )

    producer, consumer = stack("Producer"), stack("Consumer")
    topic = sns.Topic(producer, "Topic", topic_name=topic_name)
    publish(producer, config, "test/topic-arn", topic.topic_arn, "a topic")
    seen = receive(consumer, config, "test/topic-arn")
    ssm.StringParameter(consumer, "Seen", parameter_name="/test/seen", string_value=seen)
    consumer.add_stack_dependency(producer)
    assembly = app.synth()
    return tuple(json.dumps(assembly.get_stack_by_name(n).template) for n in ("Producer", "Consumer"))  # type: ignore[return-value]


def test_a_replaced_producer_resource_reaches_the_unchanged_consumer_at_its_next_deploy(dev: Any) -> None:
    """The producer's topic is replaced (a new name) and the consumer's template stays the same: only Parameter
    Store carries the new ARN, which the consumer's next deploy reads. moto models neither a replacement at
    UpdateStack nor the fetch of Parameter Store values that CloudFormation documents for updates ("When you
    create or update stacks and create change sets, CloudFormation uses whatever values exist in Parameter
    Store at the time the operation is run"), so each deploy here creates its stack anew; that the CDK CLI
    deploys the unchanged consumer at all is the parameter-type rule of the test above."""
    import boto3
    from moto import mock_aws

    producer_1, consumer_1 = _producer_and_consumer(dev.config, "first")
    producer_2, consumer_2 = _producer_and_consumer(dev.config, "second")
    assert consumer_1 == consumer_2  # only Parameter Store carries the change to the consumer
    with mock_aws():
        cfn = boto3.client("cloudformation", region_name="us-east-1")
        store = boto3.client("ssm", region_name="us-east-1")

        def deploy(name: str, template: str) -> None:
            deployed = cfn.list_stacks(StackStatusFilter=["CREATE_COMPLETE"])["StackSummaries"]
            if any(s["StackName"] == name for s in deployed):
                cfn.delete_stack(StackName=name)
            cfn.create_stack(StackName=name, TemplateBody=template)

        def seen() -> str:
            return str(store.get_parameter(Name="/test/seen")["Parameter"]["Value"])

        deploy("Producer", producer_1)
        deploy("Consumer", consumer_1)
        assert seen().endswith(":first")
        deploy("Producer", producer_2)  # the topic replaced: the parameter holds the new topic's ARN
        assert seen().endswith(":first")  # until the consumer is deployed again
        deploy("Consumer", consumer_2)
        assert seen() == "arn:aws:sns:us-east-1:123456789012:second"
