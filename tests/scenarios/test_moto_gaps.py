"""The moto 5.2.5 gaps that mlpipe.local works around (docs/local-harness.md), each shown on moto alone.

When moto is upgraded and one of these starts failing, the gap is closed: drop its workaround and its probe.
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

pytestmark = [pytest.mark.scenario, pytest.mark.xdist_group("scenario")]

ROLE = "arn:aws:iam::123456789012:role/sfn"


@pytest.fixture(scope="module")
def sfn() -> Iterator[Any]:
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield boto3.client("stepfunctions", region_name="us-east-1")


def _run(sfn: Any, states: dict[str, Any], execution_input: Any = None) -> dict[str, Any]:
    definition = {"StartAt": next(iter(states)), "States": states}
    arn = sfn.create_state_machine(
        name=f"probe{time.time_ns()}", definition=json.dumps(definition), roleArn=ROLE
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps(execution_input or {}))[
        "executionArn"
    ]
    deadline = time.monotonic() + 10
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return dict(described)


def _task(resource: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {"Probe": {"Type": "Task", "Resource": resource, "Parameters": parameters, "End": True}}


def test_batch_submit_job_sync_parameters_are_not_normalised(sfn: Any) -> None:
    parameters = {"JobName": "j", "JobQueue": "q", "JobDefinition": "d"}
    described = _run(sfn, _task("arn:aws:states:::batch:submitJob.sync", parameters))
    assert described["error"] == "States.Runtime" and "'JobName'" in described["cause"]


@pytest.mark.parametrize("action", ["createCluster", "addStep", "terminateCluster"])
def test_emr_sync_integrations_are_unsupported(sfn: Any, action: str) -> None:
    described = _run(sfn, _task(f"arn:aws:states:::elasticmapreduce:{action}.sync", {"ClusterId": "j-1"}))
    assert described["error"] == "States.Runtime"
    assert "Unsupported" in described["cause"] or "sync" in described["cause"]


def test_glue_start_job_run_sync_fails_on_the_missing_callback_endpoint(sfn: Any) -> None:
    glue = boto3.client("glue", region_name="us-east-1")
    glue.create_job(Name="clean", Role="r", Command={"Name": "glueetl", "ScriptLocation": "s3://b/s.py"})
    described = _run(sfn, _task("arn:aws:states:::glue:startJobRun.sync", {"JobName": "clean"}))
    assert described["error"] == "States.Runtime" and "interrupt_all" in described["cause"]


def test_a_fail_state_cannot_raise_a_states_error(sfn: Any) -> None:
    states = {"Fail": {"Type": "Fail", "ErrorPath": "$.error", "CausePath": "$.cause"}}
    described = _run(sfn, states, {"error": "States.TaskFailed", "cause": "job failed"})
    assert described["error"] == "States.Runtime" and "MUST NOT begin with the prefix" in described["cause"]


def test_emr_steps_never_complete() -> None:
    with mock_aws():
        emr = boto3.client("emr", region_name="us-east-1")
        cluster = emr.run_job_flow(
            Name="c",
            ReleaseLabel="emr-7.12.0",
            Instances={
                "InstanceCount": 1,
                "MasterInstanceType": "m5.xlarge",
                "KeepJobFlowAliveWhenNoSteps": True,
            },
            JobFlowRole="r",
            ServiceRole="r",
        )["JobFlowId"]
        step = {
            "Name": "s",
            "ActionOnFailure": "CONTINUE",
            "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["true"]},
        }
        [step_id] = emr.add_job_flow_steps(JobFlowId=cluster, Steps=[step])["StepIds"]
        states = {
            emr.describe_step(ClusterId=cluster, StepId=step_id)["Step"]["Status"]["State"] for _ in range(3)
        }
        assert states == {"RUNNING"}


def test_batch_stores_the_retry_strategy_but_never_applies_it() -> None:
    from moto.batch import models

    assert "retry_strategy" in inspect.signature(models.JobDefinition.__init__).parameters
    job_source = inspect.getsource(models.Job)
    assert "retry_strategy" not in job_source and "evaluateOnExit" not in job_source


def test_a_lambda_service_error_is_reported_as_exception_not_lambda_code(sfn: Any) -> None:
    states = {
        "Call": {
            "Type": "Task",
            "Resource": "arn:aws:lambda:us-east-1:123456789012:function:absent",
            "End": True,
        }
    }
    described = _run(sfn, states)
    assert described["error"] == "Exception"  # AWS: Lambda.ResourceNotFoundException
