"""Resource discovery: stack outputs, environment variables and explicit overrides, and the one-line errors
for a missing stack or output."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from moto_deployment import ARTIFACTS, RAW, REGION, Deployed, _template

from mlpipe.client import Deployment, NotFound, UsageError


def test_outputs_come_from_the_stacks_that_mlpipe_config_names(
    deployment: Deployment, deployed: Deployed
) -> None:
    assert deployment.workload == "clicks"  # the only one the Batch stack lists
    assert deployment.stack_name("Workload") == "MlpipeDev-Workload-clicks"
    assert deployment.output("StateMachineArn") == deployed.state_machine_arn
    assert deployment.output("RawBucket") == RAW
    assert deployment.output("ArtifactsBucket") == ARTIFACTS
    assert deployment.output("SpotFirstQueue") == deployed.spot_first_queue
    assert deployment.output("JobLogGroup") == "mlpipe-dev-batch-jobs"


def test_each_stack_is_described_once(deployment: Deployment) -> None:
    calls: list[str] = []
    client = deployment.aws.client("cloudformation")
    client.meta.events.register(
        "provide-client-params.cloudformation.DescribeStacks",
        lambda params, **kw: calls.append(params["StackName"]),
    )
    deployment.output("SpotFirstQueue")
    deployment.output("OnDemandQueue")
    deployment.output("TrainingJobDefinition")
    deployment.output("RawBucket")
    assert calls == ["MlpipeDev-Batch", "MlpipeDev-Workload-clicks", "MlpipeDev-Storage"]


def test_environment_variable_wins_and_needs_no_stack(aws: Any, deployed: Deployed) -> None:
    deployment = Deployment(aws, env="nowhere", environ={"MLPIPE_STATE_MACHINE_ARN": "arn:aws:states:x"})
    assert deployment.output("StateMachineArn") == "arn:aws:states:x"
    with pytest.raises(NotFound, match="stack MlpipeNowhere-Batch not found"):
        deployment.output("SpotFirstQueue")


def test_explicit_override_wins_over_the_environment(aws: Any, deployed: Deployed) -> None:
    deployment = Deployment(
        aws, overrides={"StateMachineArn": "arn:flag"}, environ={"MLPIPE_STATE_MACHINE_ARN": "arn:env"}
    )
    assert deployment.output("StateMachineArn") == "arn:flag"


def test_env_and_prefix_from_the_environment(aws: Any, deployed: Deployed) -> None:
    deployment = Deployment(aws, environ={"MLPIPE_ENV": "prod", "MLPIPE_STACK_PREFIX": "Team"})
    assert deployment.stack_name("Batch") == "TeamProd-Batch"


def test_missing_stack_says_which_and_how_to_point_elsewhere(aws: Any, deployed: Deployed) -> None:
    deployment = Deployment(aws, env="prod", environ={})
    with pytest.raises(NotFound) as caught:
        deployment.output("StateMachineArn")
    message = str(caught.value)
    assert "MlpipeProd-Batch" in message and REGION in message and "--env" in message
    deployment = Deployment(aws, workload="churn", environ={})
    with pytest.raises(
        NotFound, match=r"stack MlpipeDev-Workload-churn not found .* is workload 'churn' deployed"
    ):
        deployment.output("StateMachineArn")


def test_a_deployment_of_several_workloads_needs_the_choice(aws: Any, deployed: Deployed) -> None:
    deployment = Deployment(aws, environ={"MLPIPE_WORKLOADS": "clicks,churn"})
    with pytest.raises(UsageError, match="runs workloads clicks, churn: choose one with --workload NAME"):
        deployment.output("StateMachineArn")
    chosen = Deployment(aws, workload="clicks", environ={"MLPIPE_WORKLOADS": "clicks,churn"})
    assert chosen.output("StateMachineArn") == deployed.state_machine_arn
    with pytest.raises(UsageError, match="--workload 'Clicks!' is not a workload name"):
        Deployment(aws, workload="Clicks!", environ={})


def test_missing_output_names_the_variable_that_gives_it(aws: Any, deployed: Deployed) -> None:
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName="MlpipeQa-Workload-clicks",
        TemplateBody=_template({"Topic": {"Type": "AWS::SNS::Topic"}}, {"FailureTopicArn": {"Ref": "Topic"}}),
    )
    deployment = Deployment(aws, env="qa", workload="clicks", environ={})
    assert deployment.output("FailureTopicArn").startswith("arn:aws:sns:")
    with pytest.raises(NotFound, match=r"has no output StateMachineArn.*MLPIPE_STATE_MACHINE_ARN"):
        deployment.output("StateMachineArn")


@pytest.mark.parametrize(("env", "prefix"), [("dev-1", None), ("dev", "1bad"), ("", "Mlpipe Dev")])
def test_bad_env_or_prefix_is_a_usage_error(aws: Any, env: str, prefix: str | None) -> None:
    with pytest.raises(UsageError):
        Deployment(aws, env=env or None, stack_prefix=prefix, environ={})
