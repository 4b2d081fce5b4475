"""A deployed mlpipe, in moto: the stacks' CloudFormation outputs carry the ARNs and names of resources
created in moto (a state machine whose first state is a Plan Lambda, Batch compute environments, queues and
job definitions, buckets, a log group), as `cdk deploy` would leave them.

`deployed` gives it in-process (mock_aws); tests/client/test_commands.py starts a moto server instead and
runs the `mlpipe` command against it (as a subprocess, and through its `main`).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

REGION = "us-east-1"
RAW, CURATED, ARTIFACTS = "mlpipe-raw-test", "mlpipe-curated-test", "mlpipe-artifacts-test"
LOG_GROUP = "mlpipe-dev-batch-jobs"
WORKLOAD = "clicks"
DEFAULT_CANDIDATES = [
    {"name": "baseline", "hyperparameters": {"lr": 0.003, "epochs": 4}},
    {"name": "wide", "hyperparameters": {"lr": 0.002, "epochs": 4, "hidden": [256, 128]}},
]
# moto runs the Plan Lambda as an echo (its "simple" Lambda backend), and Step Functions definitions with
# its ASL interpreter. The definition mirrors the pipeline's shape: a Plan task, a Parallel state whose
# failure is caught, recorded under $.failure and ends in a Fail state with the error and cause. A quality
# gate above 0.9 fails the run (the evaluation gives 0.8123); a gate of exactly 0.5 holds the run in a Wait
# state for an hour (a run that is still running).
MOTO_CONFIG: Any = {
    "stepfunctions": {"execute_state_machine": True},
    "lambda": {"use_docker": False},
    "batch": {"use_docker": False},
}
GATE_CAUSE = "run: test AUC 0.8123 of candidate 'baseline' is below the quality gate 0.9500"


def definition(plan_function_arn: str) -> dict[str, Any]:
    return {
        "StartAt": "Plan",
        "States": {
            "Plan": {
                "Type": "Task",
                "Resource": plan_function_arn,
                "ResultPath": "$.plan",
                "Next": "EvaluateModel",
            },
            "EvaluateModel": {
                "Type": "Parallel",
                "ResultPath": "$.evaluation",
                "Next": "Summarize",
                "Catch": [
                    {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "EvaluateModel failed"}
                ],
                "Branches": [
                    {
                        "StartAt": "QualityGate",
                        "States": {
                            "QualityGate": {
                                "Type": "Choice",
                                "Choices": [
                                    {
                                        "Variable": "$.plan.quality_gate.threshold",
                                        "NumericGreaterThan": 0.9,
                                        "Next": "BelowGate",
                                    },
                                    {
                                        "Variable": "$.plan.quality_gate.threshold",
                                        "NumericEquals": 0.5,
                                        "Next": "Hold",
                                    },
                                ],
                                "Default": "Passed",
                            },
                            "Hold": {"Type": "Wait", "Seconds": 3600, "Next": "Passed"},
                            "BelowGate": {"Type": "Fail", "Error": "QualityGateFailed", "Cause": GATE_CAUSE},
                            "Passed": {
                                "Type": "Pass",
                                "Result": {"auc": 0.8123, "passed": True},
                                "End": True,
                            },
                        },
                    }
                ],
            },
            "EvaluateModel failed": {
                "Type": "Pass",
                "Parameters": {
                    "state": "EvaluateModel",
                    "error.$": "$.error.Error",
                    "cause.$": "$.error.Cause",
                },
                "ResultPath": "$.failure",
                "Next": "Fail",
            },
            "Fail": {"Type": "Fail", "ErrorPath": "$.failure.error", "CausePath": "$.failure.cause"},
            "Summarize": {
                "Type": "Pass",
                "Parameters": {"raw_uri.$": "$.plan.raw_uri", "published": True},
                "End": True,
            },
        },
    }


@dataclass(frozen=True)
class Deployed:
    state_machine_arn: str
    plan_function_arn: str
    spot_first_queue: str
    on_demand_queue: str
    spot_only_queue: str
    training_job_definition: str
    multi_node_job_definition: str
    inference_job_definition: str


def _template(resources: dict[str, Any], outputs: dict[str, Any]) -> str:
    return json.dumps(
        {
            "AWSTemplateFormatVersion": "2010-09-09",
            "Resources": resources,
            "Outputs": {key: {"Value": value} for key, value in outputs.items()},
        }
    )


def deploy(session: boto3.Session, *, stack_prefix: str = "MlpipeDev") -> Deployed:
    """Create the resources and the Storage, Batch and Pipeline stacks whose outputs point at them."""
    iam, ec2, batch = (session.client(s, region_name=REGION) for s in ("iam", "ec2", "batch"))
    role = iam.create_role(RoleName="mlpipe-test", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    profile = iam.create_instance_profile(InstanceProfileName="mlpipe-test")["InstanceProfile"]["Arn"]
    vpc = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.40.0.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="hosts", Description="hosts", VpcId=vpc)["GroupId"]

    def environment(name: str, kind: str, types: list[str], max_vcpus: int) -> str:
        resources = {
            "type": kind,
            "minvCpus": 0,
            "maxvCpus": max_vcpus,
            "instanceTypes": types,
            "subnets": [subnet],
            "securityGroupIds": [group],
            "instanceRole": profile,
        }
        return str(
            batch.create_compute_environment(
                computeEnvironmentName=name,
                type="MANAGED",
                state="ENABLED",
                computeResources=resources,
                serviceRole=role,
            )["computeEnvironmentArn"]
        )

    spot = environment("mlpipe-spot", "SPOT", ["g5.xlarge", "g5.2xlarge", "g6.xlarge", "g6.2xlarge"], 64)
    on_demand = environment("mlpipe-on-demand", "EC2", ["g5.xlarge", "g5.2xlarge", "g5.12xlarge"], 96)

    fair_share = batch.create_scheduling_policy(
        name="mlpipe-fair-share",
        fairsharePolicy={"shareDecaySeconds": 3600, "shareDistribution": [{"shareIdentifier": WORKLOAD}]},
    )["arn"]

    def queue(name: str, priority: int, *environments: str, policy: str | None = fair_share) -> str:
        order = [{"order": i + 1, "computeEnvironment": arn} for i, arn in enumerate(environments)]
        return str(
            batch.create_job_queue(
                jobQueueName=name, state="ENABLED", priority=priority, computeEnvironmentOrder=order,
                **({"schedulingPolicyArn": policy} if policy else {}),
            )["jobQueueArn"]
        )  # fmt: skip

    spot_first = queue("mlpipe-spot-first", 10, spot, on_demand)
    on_demand_queue = queue("mlpipe-on-demand", 20, on_demand)
    spot_only = queue("mlpipe-spot-only", 5, spot, policy=None)

    train_command = ["python", "-m", "mlpipe_batch.train", "--manifest", "Ref::input", "--output", "Ref::output",
                     "--checkpoint", "Ref::checkpoint", "--hyperparameters", "Ref::hyperparameters"]  # fmt: skip
    logging = {
        "logDriver": "awslogs",
        "options": {"awslogs-group": LOG_GROUP, "awslogs-stream-prefix": "mlpipe"},
    }
    retry = {"attempts": 3, "evaluateOnExit": [{"action": "RETRY", "onStatusReason": "Host EC2*"},
                                               {"action": "EXIT", "onReason": "*"}]}  # fmt: skip
    parameters = {"input": "", "output": "", "checkpoint": "", "hyperparameters": "{}"}

    def resources(gpus: int, vcpus: int, memory: int) -> list[dict[str, str]]:
        return [
            {"type": "MEMORY", "value": str(memory)},
            {"type": "VCPU", "value": str(vcpus)},
            {"type": "GPU", "value": str(gpus)},
        ]

    training = batch.register_job_definition(
        jobDefinitionName="mlpipe-training",
        type="container",
        parameters=parameters,
        containerProperties={"image": "training", "command": train_command, "logConfiguration": logging,
                             "resourceRequirements": resources(1, 4, 15_000)},
        retryStrategy=retry,
        timeout={"attemptDurationSeconds": 14_400},
        propagateTags=True,
        platformCapabilities=["EC2"],
        schedulingPriority=50,
    )["jobDefinitionArn"]  # fmt: skip
    multi_node = batch.register_job_definition(
        jobDefinitionName="mlpipe-multinode",
        type="multinode",
        parameters=parameters,
        nodeProperties={
            "numNodes": 2,
            "mainNode": 0,
            "nodeRangeProperties": [
                {"targetNodes": "0:1", "container": {"image": "training", "command": train_command,
                 "instanceType": "g5.12xlarge", "logConfiguration": logging,
                 "resourceRequirements": resources(4, 46, 176_947)}}
            ],
        },
        retryStrategy=retry,
        platformCapabilities=["EC2"],
        schedulingPriority=50,
    )["jobDefinitionArn"]  # fmt: skip
    inference = batch.register_job_definition(
        jobDefinitionName="mlpipe-inference",
        type="container",
        parameters={"input": "", "model": "", "output": ""},
        containerProperties={
            "image": "inference",
            "command": ["python"],
            "resourceRequirements": resources(1, 4, 15_000),
        },
    )["jobDefinitionArn"]

    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("preprocessing/handler.py", "def handler(event, context):\n    return event\n")
    plan_env = {
        "RAW_BUCKET": RAW,
        "CURATED_BUCKET": CURATED,
        "ARTIFACTS_BUCKET": ARTIFACTS,
        "WORKLOAD_NAME": WORKLOAD,
        "RAW_PREFIX": "events/",
        "METRIC_NAME": "auc",
        "METRIC_DIRECTION": "maximize",
        "METRIC_GATE": "0.4",  # below every threshold the tests give, so each one is stricter
        "FEATURES_SCRIPT_URI": f"s3://{ARTIFACTS}/code/emr/build_features.py",
        "INFERENCE_FEATURES_SCRIPT_URI": f"s3://{ARTIFACTS}/code/emr/inference_features.py",
        "EMR_PY_FILES_URI": f"s3://{ARTIFACTS}/code/emr/emr_steps.zip",
        "WORKLOAD_CODE_URI": f"s3://{ARTIFACTS}/code/workload/clickstream.zip",
        "STAGES": json.dumps(["clean", "features"]),
        "FEATURES_ARGUMENTS": json.dumps(["--workload-module", "features", "--id-column", "event_id"]),
        "INFERENCE_FEATURES_ARGUMENTS": json.dumps(["--workload-module", "features"]),
        "DEFAULT_CANDIDATES": json.dumps(DEFAULT_CANDIDATES, separators=(",", ":")),
        "MAX_CANDIDATES": "4",
        "POWERTOOLS_SERVICE_NAME": "mlpipe-preprocessing",
    }
    function = session.client("lambda", region_name=REGION).create_function(
        FunctionName="mlpipe-dev-preprocessing",
        Runtime="python3.13",
        Role=role,
        Handler="preprocessing.handler.handler",
        Code={"ZipFile": code.getvalue()},
        Environment={"Variables": plan_env},
    )["FunctionArn"]
    machine = session.client("stepfunctions", region_name=REGION).create_state_machine(
        name="mlpipe-dev-pipeline", definition=json.dumps(definition(function)), roleArn=role
    )["stateMachineArn"]

    cloudformation = session.client("cloudformation", region_name=REGION)
    cloudformation.create_stack(
        StackName=f"{stack_prefix}-Storage",
        TemplateBody=_template(
            {
                name: {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": bucket}}
                for name, bucket in (("Raw", RAW), ("Curated", CURATED), ("Artifacts", ARTIFACTS))
            },
            {
                "RawBucket": {"Ref": "Raw"},
                "CuratedBucket": {"Ref": "Curated"},
                "ArtifactsBucket": {"Ref": "Artifacts"},
            },
        ),
    )
    cloudformation.create_stack(
        StackName=f"{stack_prefix}-Batch",
        TemplateBody=_template(
            {"JobLogs": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": LOG_GROUP}}},
            {
                "SpotFirstQueue": spot_first,
                "OnDemandQueue": on_demand_queue,
                "JobLogGroup": {"Ref": "JobLogs"},
                "Workloads": WORKLOAD,
            },
        ),
    )
    cloudformation.create_stack(
        StackName=f"{stack_prefix}-Workload-{WORKLOAD}",
        TemplateBody=_template(
            {"FailureTopic": {"Type": "AWS::SNS::Topic"}},
            {
                "Workload": WORKLOAD,
                "ShareIdentifier": WORKLOAD,
                "JobInput": f"s3://{CURATED}/features/{WORKLOAD}/",
                "TrainingJobDefinition": training,
                "MultiNodeJobDefinition": multi_node,
                "InferenceJobDefinition": inference,
                "StateMachineArn": machine,
                "FailureTopicArn": {"Ref": "FailureTopic"},
                "ModelPackageGroup": f"mlpipe-dev-{WORKLOAD}",
            },
        ),
    )
    return Deployed(
        state_machine_arn=machine,
        plan_function_arn=function,
        spot_first_queue=spot_first,
        on_demand_queue=on_demand_queue,
        spot_only_queue=spot_only,
        training_job_definition=training,
        multi_node_job_definition=multi_node,
        inference_job_definition=inference,
    )


@contextmanager
def moto_gaps_filled() -> Iterator[None]:
    """MOTO GAP (5.2.5): DescribeJobDefinitions leaves out a multi-node definition's nodeProperties, which
    AWS returns. Patched into moto's answer (tests only) so the multi-node checks see what AWS gives."""
    from moto.batch.models import JobDefinition

    original = JobDefinition.describe

    def describe(self: Any) -> dict[str, Any]:
        result: dict[str, Any] = original(self)
        if self.node_properties:
            result["nodeProperties"] = self.node_properties
        return result

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(JobDefinition, "describe", describe)
        for name in ("MLPIPE_ENV", "MLPIPE_STACK_PREFIX", "AWS_ENDPOINT_URL", "AWS_PROFILE"):
            patch.delenv(name, raising=False)
        yield
