"""Values that one stack hands to another: an SSM parameter in the producer, read by the consumer's template.

A weak reference (`Fn::GetStackOutput`) is read only when the consumer's own template changes, so a
replaced producer resource (a new VPC, queue, state machine) would leave the consumer with the old value.
A template parameter of type `AWS::SSM::Parameter::Value<String>` is fetched again at every update of the
consumer ("CloudFormation always fetches the latest values from Parameter Store when it updates stacks",
CloudFormation user guide, "Systems Manager parameter types"), and the CDK CLI never skips a stack that has
one. A producer's new value therefore reaches each consumer at the next `cdk deploy --all`, which deploys
producers first (`platform.py` makes them dependencies), and a producer's replacement is never blocked by
an export in use.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from mlpipe.config import MlpipeConfig


def parameter_name(config: MlpipeConfig, path: str) -> str:
    """`/mlpipe/dev/network/vpc-id` for `network/vpc-id`."""
    return f"/{config.stack_prefix.lower()}/{config.env}/{path}"


def publish(scope: Construct, config: MlpipeConfig, path: str, value: str, description: str) -> None:
    """Hand `value` (a token of `scope`'s stack) to other stacks under `path`."""
    construct_id = "Handoff-" + path.replace("/", "-")
    ssm.StringParameter(
        scope,
        construct_id,
        parameter_name=parameter_name(config, path),
        string_value=value,
        description=f"mlpipe ({config.env}), read by other stacks: {description}",
    )


def receive(scope: Construct, config: MlpipeConfig, path: str) -> str:
    """The value another stack published under `path`, as `scope`'s stack reads it at each of its deploys."""
    return ssm.StringParameter.value_for_string_parameter(Stack.of(scope), parameter_name(config, path))
