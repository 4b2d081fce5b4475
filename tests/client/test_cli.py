"""The command layer in-process: --help everywhere, the one-line errors for AWS access problems, redrive of
a failed run (RedriveExecution stubbed: moto 5.2.5 lacks it), and the live display on a terminal."""

from __future__ import annotations

import io
import json
import time
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError, NoCredentialsError
from moto_deployment import RAW, Deployed

from mlpipe import cli
from mlpipe.client import aws as aws_module

COMMANDS = [
    ["run"], ["status"], ["list"], ["stop"], ["redrive"], ["train"],
    ["train", "submit"], ["train", "status"], ["train", "logs"], ["train", "cancel"],
]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main([*command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: mlpipe {' '.join(command)}")
    if command != ["train"]:
        assert "--output {text,json}" in out and "--region" in out and "--profile" in out


def session_answering(error: BaseException) -> Any:
    """A session whose every call raises `error` (as botocore would, after its retries)."""

    def new_session(*, region: str | None, profile: str | None) -> Any:
        session = boto3.Session(region_name=region or "us-east-1")

        def fail(**_: Any) -> None:
            raise error

        session.events.register("before-call", fail)
        return session

    return new_session


@pytest.mark.parametrize(
    ("error", "code", "expected"),
    [
        (ClientError({"Error": {"Code": "AccessDenied", "Message": "User: u is not authorized to perform: cloudformation:DescribeStacks"}}, "DescribeStacks"), 2, "access denied calling DescribeStacks: User: u is not authorized to perform: cloudformation:DescribeStacks"),
        (ClientError({"Error": {"Code": "ExpiredTokenException", "Message": "expired"}}, "DescribeStacks"), 2, "your AWS credentials have expired"),
        (ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "DescribeStacks"), 1, "AWS throttled DescribeStacks even after retries"),
        (NoCredentialsError(), 2, "no AWS credentials found"),
    ],
)  # fmt: skip
def test_aws_access_problems_are_one_sentence(
    error: BaseException,
    code: int,
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(aws_module, "new_session", session_answering(error))
    assert cli.main(["list"]) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"mlpipe: error: {expected}")


def test_an_unexpected_aws_error_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    error = ClientError({"Error": {"Code": "InternalFailure", "Message": "boom"}}, "DescribeStacks")
    monkeypatch.setattr(aws_module, "new_session", session_answering(error))
    with pytest.raises(ClientError, match="InternalFailure"):
        cli.main(["list"])


def test_no_region_and_unknown_profile(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    assert cli.main(["list"]) == 2
    assert (
        capsys.readouterr().err
        == "mlpipe: error: no AWS region: pass --region or set AWS_REGION (or a region in your profile)\n"
    )
    assert cli.main(["list", "--profile", "nobody", "--region", "us-east-1"]) == 2
    assert "The config profile (nobody) could not be found" in capsys.readouterr().err


def test_redrive_a_failed_run_from_the_command(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    arn = sfn.start_execution(
        stateMachineArn=deployed.state_machine_arn,
        name="cli-redrive",
        input=json.dumps({"raw_uri": f"s3://{RAW}/events/", "quality_gate": {"threshold": 0.95}}),
    )["executionArn"]
    for _ in range(100):
        if sfn.describe_execution(executionArn=arn)["status"] != "RUNNING":
            break
        time.sleep(0.05)
    sent: list[dict[str, Any]] = []
    original = aws_module.new_session

    def stubbed(*, region: str | None, profile: str | None) -> Any:
        # MOTO GAP (5.2.5): RedriveExecution is not implemented; only that call is stubbed.
        session = original(region=region, profile=profile)
        session.events.register(
            "provide-client-params.sfn.RedriveExecution", lambda params, **_: sent.append(params)
        )
        session.events.register(
            "before-call.sfn.RedriveExecution",
            lambda **_: (AWSResponse("https://stub", 200, {}, None), {"redriveDate": datetime.now(UTC)}),
        )
        return session

    monkeypatch.setattr(aws_module, "new_session", stubbed)
    assert cli.main(["redrive", "cli-redrive", "--region", "us-east-1"]) == 0
    assert capsys.readouterr().out.startswith("redrove run cli-redrive (redrive 1)")
    assert [s["executionArn"] for s in sent] == [arn]


def test_live_display_on_a_terminal(deployed: Deployed) -> None:
    from mlpipe.client import Aws, Deployment, Executions
    from mlpipe.commands._display import ExecutionProgressDisplay

    executions = Executions(Deployment(Aws(region="us-east-1"), environ={}))
    started = executions.start(
        executions.prepare({"raw_uri": f"s3://{RAW}/events/live/", "run_id": "cli-live"})
    )
    screen = io.StringIO()
    with ExecutionProgressDisplay("cli-live", stream=screen, live=True) as display:
        final = executions.follow(started.arn, observer=display, poll_seconds=0.05)
    assert final.succeeded
    drawn = screen.getvalue()
    assert "run cli-live: SUCCEEDED" in drawn
    for state in ("Plan", "EvaluateModel", "Summarize"):
        assert state in drawn


SUBMIT = ["train", "submit", "--manifest", "s3://mlpipe-curated-test/features/clicks/r1/manifest.json",
          "--output-prefix", "s3://mlpipe-artifacts-test/runs/clicks/r1/candidates/a/"]  # fmt: skip
RAW_URI = f"s3://{RAW}/events/"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "--bogus"], "unrecognized arguments: --bogus"),
        ([*SUBMIT, "--bogus", "1"], "unrecognized arguments: --bogus 1"),
        (["train", "--bogus", "status", "abc"], "unrecognized arguments: --bogus"),
        (["run"], "give an execution input file"),
        (["run", "/nonexistent/input.json"], "/nonexistent/input.json: no such file"),
        (["run", "--raw-uri", "s3://elsewhere/events/"], "outside the project's buckets"),
        (["run", "--raw-uri", RAW_URI, "--run-id", "Bad_Id"], "input.run_id: 'Bad_Id' is not valid"),
        (["status", "x", "--poll-seconds", "0"], "out of range"),
        (["status", "never-ran"], "no execution 'never-ran'"),
        (["list", "--env", "prod"], "stack MlpipeProd-Batch not found"),
        (["list", "--limit", "5000"], "5000 is out of range"),
        ([*SUBMIT, "--gpus", "9"], "--gpus 9 is out of range"),
        ([*SUBMIT, "--nodes", "0"], "--nodes 0 is out of range"),
        ([*SUBMIT, "--nodes", "two"], "'two' is not a whole number"),
        ([*SUBMIT, "--tag", "novalue"], "'novalue' is not KEY=VALUE"),
        ([*SUBMIT, "--hyperparameters", "{bad"], "--hyperparameters: not valid JSON"),
        ([*SUBMIT, "--hyperparameters", "[1]"], "--hyperparameters must be a JSON object"),
        ([*SUBMIT, "--hyperparameters", "@/nonexistent/hp.json"], "/nonexistent/hp.json: no such file"),
        ([*SUBMIT, "--gpus", "8"], "cannot give 8 GPU(s)"),
        ([*SUBMIT, "--nodes", "2", "--queue", "mlpipe-spot-only"], "has only Spot compute environments"),
        ([*SUBMIT, "--nodes", "4"], "describes nodes 0:1 only"),
        ([*SUBMIT, "--queue", "nope"], "job queue 'nope' not found"),
        ([*SUBMIT, "--job-definition", "nope"], "job definition 'nope' not found"),
        ([*SUBMIT, "--output-prefix", "s3://b/no-slash"], "must be an s3:// prefix ending in '/'"),
        (["train", "status", "00000000-0000-0000-0000-000000000000"], "no Batch job"),
        (["train", "cancel", "not a job"], "is not a Batch job id"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: list[str], expected: str, deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = boto3.client("batch", region_name="us-east-1")
    before = batch.list_jobs(jobQueue="mlpipe-spot-first", jobStatus="SUCCEEDED")["jobSummaryList"]
    try:
        code = cli.main([*args, "--region", "us-east-1"] if "--bogus" not in args else args)
    except SystemExit as exit_:  # argparse's errors
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and expected in err and "Traceback" not in err
    assert batch.list_jobs(jobQueue="mlpipe-spot-first", jobStatus="SUCCEEDED")["jobSummaryList"] == before
