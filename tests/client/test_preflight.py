"""`mlpipe preflight`: a fresh account's findings, each with its fix, and exit 1; a ready account passes.

STS, SSM, CloudFormation and S3 answer from moto. moto has no EC2 quotas in Service Quotas and no Lambda
GetAccountSettings, so those answers are recorded ones, given through botocore's Stubber, which checks them
against the services' models.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from mlpipe import cli
from mlpipe import preflight as pf
from mlpipe.config import load_config

REPO_ROOT = Path(__file__).resolve().parents[2]
NOW = datetime.now(UTC)


def _config(**pipeline: Any) -> Any:
    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    context["env"] = "dev"
    context["environments"]["dev"].setdefault("pipeline", {}).update(pipeline)
    return load_config(context, environ={})


def _quota(name: str, code: str, value: float, service: str = "ec2") -> dict[str, Any]:
    return {"ServiceCode": service, "QuotaName": name, "QuotaCode": code, "Value": value, "Unit": "None"}


def _ec2_quotas(value: float) -> list[dict[str, Any]]:
    """Service Quotas' answer for EC2, as recorded: the GPU groups' vCPU quotas (a new account has 0)."""
    return [
        _quota("Running On-Demand G and VT instances", "L-DB2E81BA", value),
        _quota("All G and VT Spot Instance Requests", "L-3819A6DF", value),
        _quota("Running On-Demand P instances", "L-417A185B", value),
        _quota("Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances", "L-1216C47A", 5),
    ]


class RecordedSession:
    """A boto3 session for `preflight.gather`: moto's clients, and stubbed ones where moto has no model."""

    def __init__(self, *, quotas: float, unreserved: int, total: int, reserved_now: int = 0) -> None:
        self.region_name = "us-east-1"
        self._quotas = boto3.client("service-quotas", region_name="us-east-1")
        self._lambda = boto3.client("lambda", region_name="us-east-1")
        quotas_stub, lambda_stub = Stubber(self._quotas), Stubber(self._lambda)
        quotas_stub.add_response(
            "list_service_quotas", {"Quotas": _ec2_quotas(quotas)}, {"ServiceCode": "ec2"}
        )
        quotas_stub.add_response(
            "list_service_quotas",
            {"Quotas": [_quota("Concurrent executions", "L-B99A9384", total, "lambda")]},
            {"ServiceCode": "lambda"},
        )
        limit = {"ConcurrentExecutions": total, "UnreservedConcurrentExecutions": unreserved}
        lambda_stub.add_response("get_account_settings", {"AccountLimit": limit}, {})
        # one of the deployment's functions, and another of the account
        functions = [
            {"FunctionName": "MlpipeDev-Workload-clickstream-PipelinePlan1A2B"},
            {"FunctionName": "other"},
        ]
        lambda_stub.add_response("list_functions", {"Functions": functions}, {})
        answer = {"ReservedConcurrentExecutions": reserved_now} if reserved_now else {}
        lambda_stub.add_response(
            "get_function_concurrency",
            answer,
            {"FunctionName": "MlpipeDev-Workload-clickstream-PipelinePlan1A2B"},
        )
        self._stubs = [quotas_stub, lambda_stub]
        for stub in self._stubs:
            stub.activate()

    def client(self, service: str) -> Any:
        if service == "service-quotas":
            return self._quotas
        if service == "lambda":
            return self._lambda
        return boto3.client(service, region_name=self.region_name)

    def assert_no_pending_responses(self) -> None:
        for stub in self._stubs:
            stub.assert_no_pending_responses()


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


def _deploy_emr_and_storage(bucket: str) -> None:
    """The Emr and Storage stacks as CloudFormation lists them, with the Storage stack's bucket output."""
    cloudformation = boto3.client("cloudformation", region_name="us-east-1")
    template = {"Resources": {"Nothing": {"Type": "AWS::SNS::Topic"}}}
    cloudformation.create_stack(StackName="MlpipeDev-Emr", TemplateBody=json.dumps(template))
    storage = {**template, "Outputs": {"ArtifactsBucket": {"Value": bucket}}}
    cloudformation.create_stack(StackName="MlpipeDev-Storage", TemplateBody=json.dumps(storage))
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=bucket)


def test_a_fresh_account_fails_each_check_with_its_fix(aws: None, tmp_path: Path) -> None:
    _deploy_emr_and_storage("artifacts")  # deployed, but its certificates are missing
    session = RecordedSession(quotas=0, unreserved=10, total=10)
    config = _config(lambda_reserved_concurrency=5)
    findings = pf.evaluate(config, pf.gather(config, session, cdk_out=tmp_path), now=NOW)
    session.assert_no_pending_responses()
    failed = {f.check: f for f in findings if not f.passed}
    assert set(failed) == {"ec2 quota", "lambda", "cdk bootstrap", "emr certificates"}
    quota_lines = [f.line() for f in findings if f.check == "ec2 quota"]
    # dev: a 2-node job of g5.12xlarge (48 vCPUs each) on demand; the largest Spot type, g5.2xlarge/g6.2xlarge
    assert any(
        "Running On-Demand G and VT instances is 0 vCPUs, the largest job needs 96" in line
        and "--quota-code L-DB2E81BA --desired-value 96" in line
        for line in quota_lines
    ), quota_lines
    assert any(
        "All G and VT Spot Instance Requests is 0 vCPUs, the largest job needs 8" in line
        for line in quota_lines
    )
    assert "leaves -5; Lambda keeps at least 100" in failed["lambda"].message
    assert "--service-code lambda --quota-code L-B99A9384 --desired-value 115" in failed["lambda"].fix
    assert failed["cdk bootstrap"].fix == "cdk bootstrap aws://123456789012/us-east-1"
    assert "no emr/tls/certificates.zip" in failed["emr certificates"].message


def test_a_ready_account_passes(aws: None, tmp_path: Path) -> None:
    _deploy_emr_and_storage("artifacts")
    boto3.client("s3", region_name="us-east-1").put_object(
        Bucket="artifacts",
        Key=pf.CERTIFICATES_KEY,
        Body=b"zip",
        Metadata={"not-after": (NOW + timedelta(days=300)).isoformat()},
    )
    boto3.client("ssm", region_name="us-east-1").put_parameter(
        Name="/cdk-bootstrap/hnb659fds/version", Value="30", Type="String"
    )
    (tmp_path / "manifest.json").write_text(
        json.dumps({"artifacts": {"MlpipeDev-Batch": {"properties": {"requiresBootstrapStackVersion": 6}}}})
    )
    session = RecordedSession(quotas=384, unreserved=1000, total=1000)
    config = _config(lambda_reserved_concurrency=5)
    findings = pf.evaluate(config, pf.gather(config, session, cdk_out=tmp_path), now=NOW)
    assert [f.line() for f in findings if not f.passed] == []
    assert {f.check for f in findings} == {"ec2 quota", "lambda", "cdk bootstrap", "emr certificates"}


def test_what_the_deployment_reserves_already_is_not_counted_twice(aws: None, tmp_path: Path) -> None:
    """After a deploy the account's unreserved figure excludes the functions' reservations: a re-run of
    preflight adds them back before it compares."""
    config = _config(lambda_reserved_concurrency=5)
    before = RecordedSession(quotas=384, unreserved=110, total=1000)
    (lambda_finding,) = [
        f
        for f in pf.evaluate(config, pf.gather(config, before, cdk_out=tmp_path), now=NOW)
        if f.check == "lambda"
    ]
    assert not lambda_finding.passed  # 110 - 15 leaves 95
    after = RecordedSession(quotas=384, unreserved=110, total=1000, reserved_now=15)
    (lambda_finding,) = [
        f
        for f in pf.evaluate(config, pf.gather(config, after, cdk_out=tmp_path), now=NOW)
        if f.check == "lambda"
    ]
    assert lambda_finding.passed and "leaves 110" in lambda_finding.message


def test_certificates_near_their_end_and_an_old_bootstrap_fail() -> None:
    answers = pf.Answers(
        account="123456789012",
        region="us-east-1",
        ec2_quotas={q["QuotaName"]: q for q in _ec2_quotas(384)},
        bootstrap_version=5,
        required_bootstrap_version=21,
        emr_deployed=True,
        certificates_present=True,
        certificates_not_after=NOW + timedelta(days=29, hours=12),
    )
    failed = {f.check: f for f in pf.evaluate(_config(), answers, now=NOW) if not f.passed}
    assert set(failed) == {"cdk bootstrap", "emr certificates"}
    assert failed["cdk bootstrap"].message == "version 5, the app needs 21"
    assert failed["emr certificates"].message == "valid for 29 more days"


def test_the_command_exits_1_on_a_failure_and_2_on_a_bad_configuration(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = pf.Answers(account="123456789012", region="us-east-1", bootstrap_version=None)
    monkeypatch.setattr(pf, "gather", lambda config, session, cdk_out: answers)
    assert cli.main(["preflight", "--env", "dev"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert all(line.startswith(("ok   ", "FAIL ")) for line in out) and any(
        "cdk bootstrap aws://" in line for line in out
    )

    assert cli.main(["preflight", "--env", "staging"]) == 2  # no such environment in cdk.json: no AWS call
    assert capsys.readouterr().err == "mlpipe: error: env: unknown environment 'staging' (known: dev, prod)\n"
