"""The base class of every mlpipe stack."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Fn, Stack
from constructs import Construct


class MlpipeStack(Stack):
    """A stack whose availability zones come from Fn::GetAZs in the template.

    With an account and region set, CDK would otherwise look the AZs up at synth (an AWS call, and a
    cdk.context.json entry); the template chooses the first two AZs of the region at deploy time instead.
    """

    def __init__(self, scope: Construct, construct_id: str, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)

    @property
    def availability_zones(self) -> list[str]:
        return [Fn.select(0, Fn.get_azs()), Fn.select(1, Fn.get_azs())]

    def output(self, name: str, value: str, description: str) -> None:
        """A stack output that the mlpipe client reads to find the deployed resources."""
        CfnOutput(self, name, value=value, description=description)
