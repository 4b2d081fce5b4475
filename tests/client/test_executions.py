"""Executions against the moto deployment: start (idempotent, named by run id), follow, status, list, stop,
and redrive (RedriveExecution stubbed: moto 5.2.5 does not implement it)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from moto_deployment import GATE_CAUSE, RAW, Deployed

from mlpipe.client import Deployment, Executions, NotFound, UsageError
from mlpipe.client.executions import Follow

RAW_URI = f"s3://{RAW}/events/"


@pytest.fixture
def executions(deployment: Deployment) -> Executions:
    return Executions(deployment)


def start(executions: Executions, **document: Any) -> Any:
    return executions.start(executions.prepare({"raw_uri": RAW_URI, **document}))


def wait_until(executions: Executions, arn: str, status: str) -> None:
    for _ in range(100):
        if executions.describe(arn).status == status:
            return
        time.sleep(0.05)
    raise AssertionError(f"{arn} never reached {status}")


def wait_until_held(executions: Executions, arn: str) -> None:
    """Until the run waits in its Wait state. moto answers RUNNING before its interpreter has started the
    execution, and a StopExecution in between fails inside moto (its worker has no environment yet)."""
    sfn = executions.deployment.aws.client("stepfunctions")
    for _ in range(100):
        events = sfn.get_execution_history(executionArn=arn)["events"]
        if any(e["type"] == "WaitStateEntered" for e in events):
            return
        time.sleep(0.05)
    raise AssertionError(f"{arn} never entered its Wait state")


def test_a_run_succeeds_with_its_output_and_every_state_seen(executions: Executions) -> None:
    started = start(executions, run_id="ok-1")
    assert started.name == "ok-1" and started.arn.endswith(":execution:mlpipe-dev-pipeline:ok-1")
    seen: list[Follow] = []
    final = executions.follow("ok-1", observer=seen.append, poll_seconds=0.05, sleep=time.sleep)
    assert final.status == "SUCCEEDED" and final.succeeded
    assert final.output == {"raw_uri": RAW_URI, "published": True}
    states = seen[-1].progress.states
    assert list(states)[:2] == ["Plan", "EvaluateModel"]
    assert {name: s.status for name, s in states.items()}["Summarize"] == "succeeded"
    assert all(s.status == "succeeded" for s in states.values()), {
        n: (s.status, s.entered, s.succeeded, s.failed, s.stopped) for n, s in states.items()
    }
    assert final.to_json()["status"] == "SUCCEEDED" and "error" not in final.to_json()


def test_a_failed_run_names_the_failing_state_with_error_and_cause(executions: Executions) -> None:
    started = start(executions, run_id="gate-1", quality_gate={"threshold": 0.95})
    final = executions.follow(started.arn, poll_seconds=0.05)
    assert final.status == "FAILED" and not final.succeeded
    assert final.failure is not None
    assert (final.failure.state, final.error, final.cause) == (
        "EvaluateModel",
        "QualityGateFailed",
        GATE_CAUSE,
    )
    described = executions.describe("gate-1")
    assert described.failure == final.failure
    document = described.to_json()
    assert document["failed_state"] == "EvaluateModel" and document["cause"] == GATE_CAUSE


def test_the_execution_name_is_the_derived_run_id(executions: Executions) -> None:
    prepared = executions.prepare({"raw_uri": RAW_URI + "derived/"})
    assert prepared.derived and prepared.run_id.startswith("r-")
    started = executions.start(prepared)
    assert started.name == prepared.run_id
    again = executions.prepare({"raw_uri": RAW_URI + "derived/", "features": {}})
    assert again.run_id == prepared.run_id  # spelled-out defaults: the same run


def test_starting_a_running_run_again_returns_the_same_execution(executions: Executions) -> None:
    first = start(executions, run_id="held-1", quality_gate={"threshold": 0.5})  # held in a Wait state
    wait_until_held(executions, first.arn)
    second = start(executions, run_id="held-1", quality_gate={"threshold": 0.5})
    assert second.arn == first.arn
    assert [e.name for e in executions.list(status="RUNNING")].count("held-1") == 1
    with pytest.raises(UsageError, match=r"already running .* with a different input"):
        start(executions, run_id="held-1", quality_gate={"threshold": 0.6})
    sent: list[dict[str, Any]] = []
    client = executions.deployment.aws.client("stepfunctions")
    client.meta.events.register(
        "provide-client-params.sfn.StopExecution", lambda params, **_: sent.append(params)
    )
    executions.stop("held-1", cause="test over")
    wait_until(executions, first.arn, "ABORTED")
    # moto 5.2.5 keeps no error or cause on a stopped execution: the request is what can be checked.
    assert sent == [{"executionArn": first.arn, "error": "mlpipe.Stopped", "cause": "test over"}]
    with pytest.raises(UsageError, match=r"run held-1 is not running \(ABORTED\): nothing to stop"):
        executions.stop("held-1")


def test_starting_an_ended_run_again_says_what_to_do(executions: Executions) -> None:
    start(executions, run_id="twice-ok")
    executions.follow("twice-ok", poll_seconds=0.05)
    with pytest.raises(UsageError, match=r"already has an execution \(SUCCEEDED.*mlpipe status twice-ok"):
        start(executions, run_id="twice-ok")
    start(executions, run_id="twice-bad", quality_gate={"threshold": 0.95})
    executions.follow("twice-bad", poll_seconds=0.05)
    with pytest.raises(UsageError, match=r"\(FAILED.*mlpipe redrive twice-bad"):
        start(executions, run_id="twice-bad", quality_gate={"threshold": 0.95})


def test_list_is_newest_first_and_filters_by_status(executions: Executions) -> None:
    for name in ("list-a", "list-b"):
        start(executions, run_id=name)
        executions.follow(name, poll_seconds=0.05)
    names = [e.name for e in executions.list(limit=1000)]
    assert names.index("list-b") < names.index("list-a")
    assert "list-a" in [e.name for e in executions.list(status="SUCCEEDED", limit=1000)]
    assert "list-a" not in [e.name for e in executions.list(status="FAILED", limit=1000)]
    assert len(executions.list(limit=1)) == 1
    with pytest.raises(UsageError, match="--status 'DONE' is not one of"):
        executions.list(status="DONE")


def test_unknown_execution_and_bad_references(executions: Executions) -> None:
    with pytest.raises(NotFound, match="no execution 'never-ran'"):
        executions.describe("never-ran")
    with pytest.raises(UsageError, match="not a Step Functions execution ARN"):
        executions.describe("arn:aws:states:us-east-1:1:stateMachine:x")


def test_validation_comes_before_any_aws_call(deployed: Deployed) -> None:
    class NoAws:
        def client(self, service: str) -> Any:
            raise AssertionError(f"an AWS call ({service}) before the input was validated")

    executions = Executions(Deployment(NoAws(), environ={}))  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"unknown key\(s\) 'epochs'"):
        executions.prepare({"raw_uri": RAW_URI, "epochs": 1})
    with pytest.raises(UsageError, match=r"input\.run_id: 'Bad_Id' is not valid"):
        executions.prepare({"raw_uri": RAW_URI}, run_id="Bad_Id")
    with pytest.raises(UsageError, match="differs from the input's run_id"):
        executions.prepare({"raw_uri": RAW_URI, "run_id": "a-1"}, run_id="b-1")


def test_the_plan_state_checks_run_before_starting(executions: Executions) -> None:
    with pytest.raises(UsageError, match="is outside the project's buckets"):
        executions.prepare({"raw_uri": "s3://someone-else/events/"})
    assert "r-" not in "".join(e.name for e in executions.list(status="RUNNING"))


# ---- redrive ----------------------------------------------------------------------------------------------
# MOTO GAP (5.2.5): RedriveExecution is not implemented (moto answers NotImplementedError; its server, 500).
# The one call is stubbed at the boto level below; everything around it (the status check, the client token,
# the describe calls) runs against moto.


@pytest.fixture
def redrive_calls(deployment: Deployment) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def redrive_stub(params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        calls.append(params)
        return AWSResponse("https://stub", 200, {}, None), {"redriveDate": datetime.now(UTC)}

    client = deployment.aws.client("stepfunctions")
    client.meta.events.register("provide-client-params.sfn.RedriveExecution", _keep_params(calls))
    client.meta.events.register("before-call.sfn.RedriveExecution", redrive_stub)
    yield calls
    client.meta.events.unregister("before-call.sfn.RedriveExecution", redrive_stub)


def _keep_params(calls: list[dict[str, Any]]) -> Any:
    def keep(params: dict[str, Any], **_: Any) -> None:
        calls.append({"request": dict(params)})

    return keep


def test_redrive_a_failed_run(executions: Executions, redrive_calls: list[dict[str, Any]]) -> None:
    start(executions, run_id="redrive-1", quality_gate={"threshold": 0.95})
    failed = executions.follow("redrive-1", poll_seconds=0.05)
    redriven = executions.redrive("redrive-1")
    assert (redriven.status, redriven.redrive_count, redriven.error) == ("RUNNING", 1, None)
    requests = [c["request"] for c in redrive_calls if "request" in c]
    assert len(requests) == 1
    assert requests[0]["executionArn"] == failed.arn
    token = requests[0]["clientToken"]
    assert len(token) == 64
    executions.redrive("redrive-1")  # moto still says FAILED, redriveCount 0: the same request again
    assert [c["request"]["clientToken"] for c in redrive_calls if "request" in c] == [token, token]


def test_only_an_ended_unsuccessful_run_is_redriven(executions: Executions, redrive_calls: list[Any]) -> None:
    start(executions, run_id="redrive-ok")
    executions.follow("redrive-ok", poll_seconds=0.05)
    with pytest.raises(UsageError, match="is SUCCEEDED: only a FAILED, TIMED_OUT or ABORTED execution"):
        executions.redrive("redrive-ok")
    assert redrive_calls == []
