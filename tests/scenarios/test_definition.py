"""The harness understands the synthesized definition (or a test fails), resolves every reference, and applies
Batch's retry strategy as AWS Batch does."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlpipe.local import CloudAssembly, Outcome, RetryStrategy, UnresolvableReference
from mlpipe.local.definition import StateMachineDefinition, integrations, unsupported
from mlpipe.local.lambdas import InProcessLambdas

pytestmark = [pytest.mark.scenario, pytest.mark.xdist_group("scenario")]


def test_the_harness_can_run_every_part_of_the_synthesized_definition(assembly: CloudAssembly) -> None:
    machine = StateMachineDefinition.from_assembly(assembly)
    functions = {spec.name for spec in InProcessLambdas.from_assembly(assembly).functions.values()}
    assert unsupported(machine.definition, functions=functions) == []
    # Every reference resolved: no CloudFormation left in the text that moto executes.
    assert "Fn::" not in machine.json and '"Ref"' not in machine.json and "${" not in machine.json
    used = set(integrations(machine.definition).values())
    assert {"batch:submitJob.sync", "glue:startJobRun.sync", "sns:publish"} <= used
    assert sum(1 for i in used if i.startswith("lambda-function:")) == 3


def test_a_shape_the_harness_does_not_know_is_reported(assembly: CloudAssembly) -> None:
    definition: dict[str, Any] = json.loads(StateMachineDefinition.from_assembly(assembly).json)
    definition["States"]["Plan"]["Resource"] = "arn:aws:states:::ecs:runTask.sync"
    definition["States"]["Summarize"]["QueryLanguage"] = "JSONata"
    definition["States"]["TrainAndPrepareInference"]["Branches"][0]["States"]["TrainCandidates"][
        "ItemProcessor"
    ]["ProcessorConfig"] = {"Mode": "DISTRIBUTED"}
    problems = unsupported(definition, functions=set())
    assert any("Plan: integration ecs:runTask.sync" in p for p in problems)
    assert any("Summarize: QueryLanguage JSONata" in p for p in problems)
    assert any("Map mode DISTRIBUTED" in p for p in problems)
    assert any("Lambda function" in p for p in problems)  # no function known


def test_lambda_environment_is_the_stacks(assembly: CloudAssembly) -> None:
    specs = {spec.handler: spec for spec in InProcessLambdas.from_assembly(assembly).functions.values()}
    assert set(specs) == {
        "preprocessing.handler.handler",
        "training.handler.handler",
        "inference.handler.handler",
        "certificates.handler.handler",  # the Emr stack's, which no state calls
    }
    assert specs["certificates.handler.handler"].environment["CERTIFICATES_KEY"] == "emr/tls/certificates.zip"
    plan = specs["preprocessing.handler.handler"].environment
    assert plan["RAW_BUCKET"] == "mlpipe-dev-raw-123456789012-us-east-1"
    assert plan["FEATURES_SCRIPT_URI"].startswith("s3://") and "${" not in plan["FEATURES_SCRIPT_URI"]
    assert specs["training.handler.handler"].environment["MODEL_PACKAGE_GROUP"] == "mlpipe-dev-clickstream"


def test_unknown_intrinsics_and_types_are_refused(assembly: CloudAssembly) -> None:
    stack = next(iter(assembly.stacks.values()))
    with pytest.raises(UnresolvableReference, match="Fn::Select"):
        assembly.resolve({"Fn::Select": [0, ["a"]]}, stack)
    with pytest.raises(UnresolvableReference, match="no resource"):
        assembly.resolve({"Ref": "NoSuchThing"}, stack)


SPOT = "Host EC2 (instance i-0123456789abcdef0) terminated."
STRATEGY = RetryStrategy.from_template(
    {
        "Attempts": 3,
        "EvaluateOnExit": [
            {"Action": "RETRY", "OnStatusReason": "Host EC2*"},
            {"Action": "EXIT", "OnReason": "*"},
        ],
    }
)


@pytest.mark.parametrize(
    ("outcome", "attempt", "action"),
    [
        (Outcome.failure(SPOT, exit_code=None), 1, "RETRY"),
        (Outcome.failure(SPOT, exit_code=None), 2, "RETRY"),
        (Outcome.failure(SPOT, exit_code=None), 3, "EXIT"),  # attempts exhausted
        (Outcome.failure("Essential container in task exited", exit_code=1), 1, "EXIT"),
        (
            Outcome.failure("Essential container in task exited", exit_code=137, reason="OutOfMemoryError"),
            1,
            "EXIT",
        ),
    ],
)
def test_retry_strategy_decides_as_batch(outcome: Outcome, attempt: int, action: str) -> None:
    assert STRATEGY.decide(outcome, attempt) == action


def test_no_matching_condition_retries_and_no_strategy_never_retries() -> None:
    only_spot = RetryStrategy.from_template(
        {"Attempts": 2, "EvaluateOnExit": [{"Action": "EXIT", "OnExitCode": "1"}]}
    )
    assert only_spot.decide(Outcome.failure("x", exit_code=2), 1) == "RETRY"  # Batch: no match means retry
    assert only_spot.decide(Outcome.failure("x", exit_code=1), 1) == "EXIT"
    assert RetryStrategy.from_template(None).decide(Outcome.failure(SPOT, exit_code=None), 1) == "EXIT"
