"""Finding the deployed resources: CloudFormation stack outputs, overridable per resource.

Each resource comes from, in order: an explicit override (a command-line flag), the environment variable
named in OUTPUTS (e.g. MLPIPE_STATE_MACHINE_ARN), or the output of the stack that `mlpipe.config` names
(`<stack prefix><Env>-<Concern>`, e.g. MlpipeDev-Pipeline). A stack is described once, and only when one
of its outputs is needed without an override.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlpipe.client.aws import Aws
from mlpipe.client.errors import NotFound, UsageError, error_message, is_code
from mlpipe.config import MlpipeConfig

ENV_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,31}$")
STACK_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,63}$")


@dataclass(frozen=True)
class Output:
    concern: str
    """The stack, by concern (`Pipeline` is MlpipeDev-Pipeline)."""
    key: str
    """The stack output's key."""
    variable: str
    """The environment variable that overrides it."""


OUTPUTS: dict[str, Output] = {
    o.key: o
    for o in (
        Output("Storage", "RawBucket", "MLPIPE_RAW_BUCKET"),
        Output("Storage", "CuratedBucket", "MLPIPE_CURATED_BUCKET"),
        Output("Storage", "ArtifactsBucket", "MLPIPE_ARTIFACTS_BUCKET"),
        Output("Batch", "SpotFirstQueue", "MLPIPE_SPOT_FIRST_QUEUE"),
        Output("Batch", "OnDemandQueue", "MLPIPE_ON_DEMAND_QUEUE"),
        Output("Batch", "TrainingJobDefinition", "MLPIPE_TRAINING_JOB_DEFINITION"),
        Output("Batch", "MultiNodeJobDefinition", "MLPIPE_MULTI_NODE_JOB_DEFINITION"),
        Output("Batch", "EvaluationJobDefinition", "MLPIPE_EVALUATION_JOB_DEFINITION"),
        Output("Batch", "InferenceJobDefinition", "MLPIPE_INFERENCE_JOB_DEFINITION"),
        Output("Batch", "Workload", "MLPIPE_WORKLOAD"),
        Output("Batch", "JobLogGroup", "MLPIPE_JOB_LOG_GROUP"),
        Output("Pipeline", "StateMachineArn", "MLPIPE_STATE_MACHINE_ARN"),
        Output("Pipeline", "FailureTopicArn", "MLPIPE_FAILURE_TOPIC_ARN"),
        Output("Pipeline", "ModelPackageGroup", "MLPIPE_MODEL_PACKAGE_GROUP"),
    )
}


class Deployment:
    """One deployed mlpipe environment, as the client sees it."""

    def __init__(
        self,
        aws: Aws,
        *,
        env: str | None = None,
        stack_prefix: str | None = None,
        overrides: Mapping[str, str | None] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.aws = aws
        self.environ = os.environ if environ is None else environ
        self.env = env or self.environ.get("MLPIPE_ENV") or "dev"
        self.stack_prefix = stack_prefix or self.environ.get("MLPIPE_STACK_PREFIX") or "Mlpipe"
        if not ENV_NAME.match(self.env):
            raise UsageError(f"--env {self.env!r} is not an environment name (letters and digits)")
        if not STACK_PREFIX.match(self.stack_prefix):
            raise UsageError(f"--stack-prefix {self.stack_prefix!r} is not a stack-name prefix")
        self.overrides = {k: v for k, v in (overrides or {}).items() if v}
        unknown = sorted(set(self.overrides) - set(OUTPUTS))
        if unknown:
            raise ValueError(f"unknown outputs {unknown}")  # a programming error
        self._stacks: dict[str, dict[str, str]] = {}

    def stack_name(self, concern: str) -> str:
        return MlpipeConfig(env=self.env, stack_prefix=self.stack_prefix).stack_name(concern)

    def output(self, key: str) -> str:
        """The value of output `key` (override, environment variable, or the stack's output)."""
        spec = OUTPUTS[key]
        if key in self.overrides:
            return str(self.overrides[key])
        if self.environ.get(spec.variable):
            return str(self.environ[spec.variable])
        outputs = self.stack_outputs(spec.concern)
        if key not in outputs:
            raise NotFound(
                f"stack {self.stack_name(spec.concern)} has no output {key} (is it an mlpipe stack, "
                f"deployed by this version?); set {spec.variable} to give the value"
            )
        return outputs[key]

    def stack_outputs(self, concern: str) -> dict[str, str]:
        if concern not in self._stacks:
            name = self.stack_name(concern)
            try:
                stacks = self.aws.client("cloudformation").describe_stacks(StackName=name)["Stacks"]
            except Exception as exc:
                if is_code(exc, "ValidationError") and "does not exist" in error_message(exc):
                    raise NotFound(
                        f"stack {name} not found in {self.aws.region}: deploy mlpipe there, or pass the "
                        "--env, --stack-prefix and --region it was deployed with"
                    ) from None
                raise
            stack: dict[str, Any] = stacks[0]
            self._stacks[concern] = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        return self._stacks[concern]

    # Shorthands for the outputs the commands use.
    @property
    def state_machine_arn(self) -> str:
        return self.output("StateMachineArn")
