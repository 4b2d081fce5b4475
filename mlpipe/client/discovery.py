"""Finding the deployed resources: CloudFormation stack outputs, overridable per resource.

Each resource comes from, in order: an explicit override (a command-line flag), the environment variable
named in OUTPUTS (e.g. MLPIPE_STATE_MACHINE_ARN), or the output of the stack that `mlpipe.config` names
(`<stack prefix><Env>-<Concern>`, e.g. MlpipeDev-Batch). A workload's own resources (its state machine, job
definitions, share) come from its pipeline stack, MlpipeDev-Workload-<name>: the workload is `--workload`,
else MLPIPE_WORKLOAD, else the only one the Batch stack lists. A stack is described once, and only when one
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
from mlpipe.workload import NAME

ENV_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,31}$")
WORKLOAD = "Workload"
"""The concern of the chosen workload's pipeline stack."""
STACK_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,63}$")


@dataclass(frozen=True)
class Output:
    concern: str
    """The stack, by concern (`Batch` is MlpipeDev-Batch; `Workload` is the chosen workload's stack)."""
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
        Output("Batch", "JobLogGroup", "MLPIPE_JOB_LOG_GROUP"),
        Output("Batch", "Workloads", "MLPIPE_WORKLOADS"),
        Output(WORKLOAD, "TrainingJobDefinition", "MLPIPE_TRAINING_JOB_DEFINITION"),
        Output(WORKLOAD, "MultiNodeJobDefinition", "MLPIPE_MULTI_NODE_JOB_DEFINITION"),
        Output(WORKLOAD, "EvaluationJobDefinition", "MLPIPE_EVALUATION_JOB_DEFINITION"),
        Output(WORKLOAD, "InferenceJobDefinition", "MLPIPE_INFERENCE_JOB_DEFINITION"),
        Output(WORKLOAD, "ShareIdentifier", "MLPIPE_SHARE_IDENTIFIER"),
        Output(WORKLOAD, "JobInput", "MLPIPE_JOB_INPUT"),
        Output(WORKLOAD, "StateMachineArn", "MLPIPE_STATE_MACHINE_ARN"),
        Output(WORKLOAD, "FailureTopicArn", "MLPIPE_FAILURE_TOPIC_ARN"),
        Output(WORKLOAD, "ModelPackageGroup", "MLPIPE_MODEL_PACKAGE_GROUP"),
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
        workload: str | None = None,
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
        self._workload = workload or self.environ.get("MLPIPE_WORKLOAD") or None
        if self._workload is not None and not NAME.match(self._workload):
            raise UsageError(
                f"--workload {self._workload!r} is not a workload name (lowercase letters, digits, '-')"
            )
        self.overrides = {k: v for k, v in (overrides or {}).items() if v}
        unknown = sorted(set(self.overrides) - set(OUTPUTS))
        if unknown:
            raise ValueError(f"unknown outputs {unknown}")  # a programming error
        self._stacks: dict[str, dict[str, str]] = {}

    def stack_name(self, concern: str) -> str:
        if concern == WORKLOAD:
            concern = f"Workload-{self.workload}"
        return MlpipeConfig(env=self.env, stack_prefix=self.stack_prefix).stack_name(concern)

    @property
    def workload(self) -> str:
        """The workload this deployment's commands act for: --workload, MLPIPE_WORKLOAD, or the only one."""
        if self._workload is None:
            deployed = [w for w in self.output("Workloads").split(",") if w]
            if len(deployed) != 1:
                raise UsageError(
                    f"this deployment runs workloads {', '.join(deployed)}: choose one with --workload NAME"
                )
            self._workload = deployed[0]
        return self._workload

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
                    if concern == WORKLOAD:
                        raise NotFound(
                            f"stack {name} not found in {self.aws.region}: is workload {self.workload!r} "
                            "deployed (listed in cdk.json's workloads)? Choose one with --workload NAME"
                        ) from None
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
