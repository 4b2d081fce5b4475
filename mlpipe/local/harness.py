"""Run the synthesized state machine locally: moto's Step Functions interpreter, the Lambdas' real code in
this process, and pluggable executors for the Batch, Glue and EMR work.

    assembly = CloudAssembly.load("cdk.out")
    with LocalPipeline(assembly, executors) as pipeline:
        result = pipeline.run({"raw_uri": f"s3://{pipeline.bucket('raw')}/<the workload's raw prefix>"})
        result.status, result.output, result.entered()

A `LocalPipeline` is one fresh, local "deployment": it starts its own moto mock (every AWS call in the
process goes to moto while it is active; with `server=True`, a moto server on 127.0.0.1 that child
processes reach too, see `server.py`), creates what the assembly declares that the execution touches (the
S3 buckets, the SNS topic, the SageMaker model package group, the state machine itself) and installs the
harness's integrations into moto's interpreter (see `moto_patches`). Retry waits are recorded and slept
`time_scale` times as long (default 0: not at all).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3

from mlpipe.local.assembly import CloudAssembly
from mlpipe.local.definition import StateMachineDefinition, unsupported
from mlpipe.local.executors import Executors
from mlpipe.local.lambdas import InProcessLambdas, LambdaInvoker
from mlpipe.local.moto_patches import RetryWait, Services, installed
from mlpipe.local.server import MotoServer
from mlpipe.local.services import BatchService, EmrService, GlueService

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})


class UnsupportedDefinition(ValueError):
    """The synthesized definition uses something the harness cannot run; the message lists what."""


@dataclass(frozen=True)
class ExecutionResult:
    arn: str
    status: str
    input: Any
    output: Any
    error: str | None
    cause: str | None
    events: list[dict[str, Any]]

    def entered(self) -> list[str]:
        """Names of the states entered, in history order (a state entered twice appears twice)."""
        return [
            e["stateEnteredEventDetails"]["name"] for e in self.events if e["type"].endswith("StateEntered")
        ]

    def events_of(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == event_type]


def bucket_for(assembly: CloudAssembly, purpose: str) -> str:
    """The local name of the assembly's bucket whose name contains `-<purpose>-`."""
    names = [assembly.ref(s, lid) for s, lid, _ in assembly.find("AWS::S3::Bucket")]
    matches = [n for n in names if f"-{purpose}-" in n]
    if len(matches) != 1:
        raise KeyError(f"no single bucket for {purpose!r} among {names}")
    return matches[0]


def plan_setting(assembly: CloudAssembly, name: str) -> str:
    """A setting of the assembly's Plan function (its environment variable `name`), resolved."""
    for stack, _, function in assembly.find("AWS::Lambda::Function"):
        properties = function.get("Properties", {})
        if properties.get("Handler") == "preprocessing.handler.handler":
            return str(assembly.resolve(properties["Environment"]["Variables"][name], stack))
    raise KeyError("the assembly has no Plan function (preprocessing.handler.handler)")


class LocalPipeline:
    def __init__(
        self,
        assembly: CloudAssembly | Path | str,
        executors: Executors,
        *,
        lambdas: LambdaInvoker | None = None,
        time_scale: float = 0.0,
        server: bool = False,
    ) -> None:
        self.assembly = assembly if isinstance(assembly, CloudAssembly) else CloudAssembly.load(assembly)
        self.machine = StateMachineDefinition.from_assembly(self.assembly)
        self.lambdas = InProcessLambdas.from_assembly(self.assembly)
        invoker = lambdas if lambdas is not None else self.lambdas
        problems = unsupported(
            self.machine.definition, functions={f.name for f in self.lambdas.functions.values()}
        )
        if problems:
            raise UnsupportedDefinition("the local harness cannot run: " + "; ".join(problems))
        self.region = self.machine.stack.region
        self.services = Services(
            lambdas=invoker,
            batch=BatchService.from_assembly(self.assembly, executors),
            glue=GlueService.from_assembly(self.assembly, executors),
            emr=EmrService(region=self.region, account=self.assembly.account, executors=executors),
            time_scale=time_scale,
        )
        self.server = MotoServer(self.region) if server else None
        self._stack: ExitStack | None = None
        self.state_machine_arn = ""

    # ---- lifecycle ------------------------------------------------------------------------------------
    def __enter__(self) -> LocalPipeline:
        from moto import mock_aws

        stack = ExitStack()
        try:
            if self.server is not None:
                stack.enter_context(self.server)
            else:
                stack.enter_context(mock_aws(config={"stepfunctions": {"execute_state_machine": True}}))
            stack.enter_context(installed(self.services))
            self._provision()
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=self.region)

    def _provision(self) -> None:
        s3 = self.client("s3")
        for stack, logical_id, _ in self.assembly.find("AWS::S3::Bucket"):
            name = self.assembly.ref(stack, logical_id)
            if self.region == "us-east-1":
                s3.create_bucket(Bucket=name)
            else:
                s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": self.region})
        sns = self.client("sns")
        for stack, logical_id, _ in self.assembly.find("AWS::SNS::Topic"):
            arn = self.assembly.ref(stack, logical_id)
            created = sns.create_topic(Name=arn.rsplit(":", 1)[-1])["TopicArn"]
            assert created == arn, f"topic {created} is not {arn}"
        sagemaker = self.client("sagemaker")
        for stack, _, resource in self.assembly.find("AWS::SageMaker::ModelPackageGroup"):
            props = self.assembly.resolve(resource["Properties"], stack)
            sagemaker.create_model_package_group(
                ModelPackageGroupName=props["ModelPackageGroupName"],
                ModelPackageGroupDescription=props.get("ModelPackageGroupDescription", ""),
            )
        name = self.assembly.ref(self.machine.stack, self.machine.logical_id).rsplit(":", 1)[-1]
        self.state_machine_arn = self.client("stepfunctions").create_state_machine(
            name=name, definition=self.machine.json, roleArn=self.machine.role_arn
        )["stateMachineArn"]

    # ---- what a caller needs --------------------------------------------------------------------------
    def bucket(self, purpose: str) -> str:
        """The local name of the bucket whose name contains `-<purpose>-` (raw, curated, artifacts, logs)."""
        return bucket_for(self.assembly, purpose)

    def topic_arn(self) -> str:
        stack, logical_id, _ = self.assembly.only("AWS::SNS::Topic")
        return self.assembly.ref(stack, logical_id)

    @property
    def retry_waits(self) -> list[RetryWait]:
        return list(self.services.waits)

    # ---- executions -----------------------------------------------------------------------------------
    def start(self, execution_input: Mapping[str, Any] | str, *, name: str | None = None) -> str:
        text = execution_input if isinstance(execution_input, str) else json.dumps(execution_input)
        response = self.client("stepfunctions").start_execution(
            stateMachineArn=self.state_machine_arn, name=name or uuid.uuid4().hex, input=text
        )
        return str(response["executionArn"])

    def wait(self, execution_arn: str, *, timeout_s: float = 60.0) -> ExecutionResult:
        sfn = self.client("stepfunctions")
        deadline = time.monotonic() + timeout_s
        while True:
            described = sfn.describe_execution(executionArn=execution_arn)
            if described["status"] in TERMINAL:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{execution_arn} still {described['status']} after {timeout_s} s")
            time.sleep(0.02)
        events = self.history(execution_arn, sfn)
        output = described.get("output")
        return ExecutionResult(
            arn=execution_arn,
            status=described["status"],
            input=json.loads(described.get("input") or "null"),
            output=json.loads(output) if output else None,
            error=described.get("error"),
            cause=described.get("cause"),
            events=events,
        )

    def history(self, execution_arn: str, sfn: Any = None) -> list[dict[str, Any]]:
        """Every event of the execution's history so far, oldest first (`sfn`: a client to reuse)."""
        sfn = sfn or self.client("stepfunctions")
        events: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
        while True:
            page = sfn.get_execution_history(**kwargs)
            events.extend(page["events"])
            if not page.get("nextToken"):
                return events
            kwargs["nextToken"] = page["nextToken"]

    def run(
        self, execution_input: Mapping[str, Any] | str, *, name: str | None = None, timeout_s: float = 60.0
    ) -> ExecutionResult:
        return self.wait(self.start(execution_input, name=name), timeout_s=timeout_s)
