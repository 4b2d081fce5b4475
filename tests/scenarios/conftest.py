"""Run the dev app's state machine locally (mlpipe.local) with the executor doubles of `doubles.py`.

The app is the test run's one dev synth (`dev_cloud_assembly`, made by the CDK CLI as `cdk synth` makes it,
with cdk-nag): the scenarios execute exactly what the stack tests check and what would be deployed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from doubles import FakeBatch, FakeEmr, FakeGlue

from mlpipe.local import CloudAssembly, ExecutionResult, Executors, LambdaInvoker, LocalPipeline
from mlpipe.local.definition import states


@pytest.fixture(scope="session")
def assembly(dev_cloud_assembly: Path) -> CloudAssembly:
    """The dev app (transient EMR): the test run's one dev synth, by the CDK CLI."""
    return CloudAssembly.load(dev_cloud_assembly)


@pytest.fixture(scope="session")
def failure_states(assembly: CloudAssembly) -> set[str]:
    """States reachable only through a Catch or a failure check: the failure handling."""
    from mlpipe.local.definition import StateMachineDefinition

    definition = StateMachineDefinition.from_assembly(assembly).definition
    by_name = dict(states(definition))
    by_leaf = {path.rsplit("/", 1)[-1]: state for path, state in by_name.items()}
    found: set[str] = set()
    # Catch targets, and the handlers that a Choice routes to (named "<something> failed").
    todo = [c["Next"] for s in by_leaf.values() for c in s.get("Catch", [])]
    todo += [name for name in by_leaf if name.endswith(" failed")]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.add(name)
        state = by_leaf[name]
        todo += [c["Next"] for c in state.get("Catch", [])]
        todo += [state["Next"]] if "Next" in state else []
        todo += [c["Next"] for c in state.get("Choices", [])]
        todo += [state["Default"]] if "Default" in state else []
    return found


@pytest.fixture(scope="session")
def all_states(assembly: CloudAssembly) -> set[str]:
    from mlpipe.local.definition import StateMachineDefinition

    definition = StateMachineDefinition.from_assembly(assembly).definition
    return {path.rsplit("/", 1)[-1] for path, _ in states(definition)}


@dataclass
class Local:
    """One local deployment with its doubles, and what the scenarios assert on."""

    pipeline: LocalPipeline
    batch: FakeBatch
    glue: FakeGlue
    emr: FakeEmr
    queue_url: str

    def run(self, execution_input: dict[str, Any], **kwargs: Any) -> ExecutionResult:
        """Run an execution; fail the test if the interpreter hit an internal error (States.Runtime): a
        scenario must fail for the pipeline's reasons, never for the harness's or moto's."""
        result = self.pipeline.run(execution_input, **kwargs)
        runtime = [e for e in result.events if "States.Runtime" in json.dumps(e, default=str)]
        assert not runtime, f"States.Runtime in the history: {runtime[0]}"
        return result

    def input(self, **more: Any) -> dict[str, Any]:
        return {"raw_uri": f"s3://{self.pipeline.bucket('raw')}/events/", **more}

    def notifications(self) -> list[dict[str, Any]]:
        """Every message published to the failure topic (through an SQS subscription), parsed."""
        sqs = self.pipeline.client("sqs")
        messages = []
        while True:
            batch = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return messages
            for message in batch:
                envelope = json.loads(message["Body"])
                messages.append({"Subject": envelope.get("Subject"), **json.loads(envelope["Message"])})

    def keys(self, purpose: str, prefix: str = "") -> list[str]:
        s3 = self.pipeline.client("s3")
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.pipeline.bucket(purpose), Prefix=prefix
        )
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))

    def get_json(self, uri: str) -> Any:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        return json.loads(self.pipeline.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())

    def model_packages(self) -> list[dict[str, Any]]:
        sagemaker = self.pipeline.client("sagemaker")
        listed = sagemaker.list_model_packages(ModelPackageGroupName="mlpipe-dev-clickstream")[
            "ModelPackageSummaryList"
        ]
        return list(listed)

    def clusters(self) -> dict[str, str]:
        """EMR cluster id -> state."""
        emr = self.pipeline.client("emr")
        return {c["Id"]: c["Status"]["State"] for c in emr.list_clusters()["Clusters"]}


@pytest.fixture
def local(assembly: CloudAssembly) -> Iterator[Callable[..., Local]]:
    """`local(batch=..., glue=..., emr=..., lambdas=wrap)`: a fresh local deployment with those doubles;
    `lambdas` wraps the in-process Lambda invoker (for injecting service errors)."""
    with ExitStack() as stack:

        def open_local(
            *,
            batch: FakeBatch | None = None,
            glue: FakeGlue | None = None,
            emr: FakeEmr | None = None,
            lambdas: Callable[[LambdaInvoker], LambdaInvoker] | None = None,
            timeouts: dict[str, int] | None = None,
        ) -> Local:
            doubles = (batch or FakeBatch(), glue or FakeGlue(), emr or FakeEmr())
            executors = Executors(batch=doubles[0], glue=doubles[1], emr=doubles[2])
            pipeline = LocalPipeline(assembly, executors)
            if lambdas is not None:
                pipeline = LocalPipeline(assembly, executors, lambdas=lambdas(pipeline.lambdas))
            for path, state in states(pipeline.machine.definition):  # seconds instead of hours, by state name
                name = path.rsplit("/", 1)[-1]
                if timeouts and name in timeouts:
                    assert "TimeoutSeconds" in state, f"{name} has no TimeoutSeconds to shorten"
                    state["TimeoutSeconds"] = timeouts[name]  # type: ignore[index]
            stack.enter_context(pipeline)
            sqs, sns = pipeline.client("sqs"), pipeline.client("sns")
            queue_url = sqs.create_queue(QueueName="failure-notifications")["QueueUrl"]
            queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
            sns.subscribe(TopicArn=pipeline.topic_arn(), Protocol="sqs", Endpoint=queue_arn)
            return Local(pipeline, *doubles, queue_url=queue_url)

        yield open_local
