"""The harness validates each state machine definition once per process (moto parses it on every
create_state_machine), and an invalid one every time; it parses a definition once for all its executions,
which still get components of their own; it has moto sign SNS messages with one key per process (moto makes
an RSA key per message)."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.stepfunctions.parser.models import InvalidDefinition

from mlpipe.local import moto_patches

VALID = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})
INVALID = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "NoSuchType"}}})


def _recording(monkeypatch: pytest.MonkeyPatch, original: str) -> list[Any]:
    """Route moto_patches' reference to one of moto's originals through a wrapper that records the first
    argument of every call (the definition text, or the SNS subscription) and then calls it."""
    calls: list[Any] = []
    call = getattr(moto_patches, original)

    def recording(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0] if args else next(iter(kwargs.values())))
        return call(*args, **kwargs)

    monkeypatch.setattr(moto_patches, original, recording)
    return calls


def test_a_valid_definition_is_parsed_once_and_an_invalid_one_every_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parsed = _recording(monkeypatch, "_original_validate_definition")
    monkeypatch.setattr(moto_patches, "_validated", set())
    for _ in range(3):
        moto_patches._validate_definition_once(VALID)
    for _ in range(2):
        with pytest.raises(InvalidDefinition):
            moto_patches._validate_definition_once(INVALID)
    assert parsed == [VALID, INVALID, INVALID]


def test_sns_messages_are_signed_with_one_key_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    made = _recording(monkeypatch, "_original_private_key")  # one call per key that moto makes
    monkeypatch.setattr(moto_patches, "_signing_key", [])
    services: Any = moto_patches.Services(lambdas=None, batch=None, glue=None, emr=None)  # type: ignore[arg-type]
    with mock_aws(), moto_patches.installed(services):
        sns, sqs = boto3.client("sns", region_name="us-east-1"), boto3.client("sqs", region_name="us-east-1")
        queue = sqs.create_queue(QueueName="notices")["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]
        queue_arn = attributes["QueueArn"]
        topic = sns.create_topic(Name="failures")["TopicArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
        for n in range(3):
            sns.publish(TopicArn=topic, Message=f"notice {n}")
        received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    notices = [json.loads(m["Body"]) for m in received]
    assert sorted(n["Message"] for n in notices) == ["notice 0", "notice 1", "notice 2"]
    assert all(n["Signature"] and n["SigningCertURL"] for n in notices)  # still signed, as moto signs them
    assert len(made) == 1


CHOOSES = json.dumps(
    {
        "StartAt": "Which",
        "States": {
            "Which": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.n", "NumericGreaterThan": 1, "Next": "Big"}],
                "Default": "Small",
            },
            "Big": {"Type": "Pass", "Result": {"size": "big"}, "End": True},
            "Small": {"Type": "Pass", "Result": {"size": "small"}, "End": True},
        },
    }
)


def test_executions_reuse_the_parse_of_their_definition_but_not_its_components(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parsed = _recording(monkeypatch, "_original_parse")
    monkeypatch.setattr(moto_patches, "_trees", {})
    monkeypatch.setattr(moto_patches, "_validated", set())
    services: Any = moto_patches.Services(lambdas=None, batch=None, glue=None, emr=None)  # type: ignore[arg-type]
    with (
        mock_aws(config={"stepfunctions": {"execute_state_machine": True}}),
        moto_patches.installed(services),
    ):
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        machine = sfn.create_state_machine(
            name="chooses", definition=CHOOSES, roleArn="arn:aws:iam::123456789012:role/sfn"
        )["stateMachineArn"]
        runs = [
            sfn.start_execution(stateMachineArn=machine, name=f"run-{i}", input=json.dumps({"n": n}))[
                "executionArn"
            ]
            for i, n in enumerate((1, 2, 0))
        ]
        outputs = []
        for run in runs:
            deadline = time.monotonic() + 30
            while (described := sfn.describe_execution(executionArn=run))["status"] == "RUNNING":
                assert time.monotonic() < deadline, "the execution did not end"
                time.sleep(0.05)
            assert described["status"] == "SUCCEEDED"
            outputs.append(json.loads(described["output"])["size"])
    assert outputs == ["small", "big", "small"]
    assert parsed == [CHOOSES]  # by the definition's validation; the three executions reused its tree
