"""EMR's TLS certificates (lambdas/certificates/): the zip EMR's security configuration expects, stored under the
project key, renewed before they end, the days left reported, and CloudFormation always answered."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from certificates import handler as certificates
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from moto import mock_aws

BUCKET = "mlpipe-artifacts-test"
KEY = "emr/tls/certificates.zip"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        kms_key = boto3.client("kms", region_name="us-east-1").create_key()["KeyMetadata"]["Arn"]
        for name, value in {
            "CERTIFICATES_BUCKET": BUCKET, "CERTIFICATES_KEY": KEY, "KMS_KEY_ARN": kms_key,
            "AWS_REGION": "us-east-1", "CERTIFICATE_DAYS": "365", "METRIC_NAMESPACE": "mlpipe/EmrCertificates",
            "MLPIPE_ENV": "dev",
        }.items():  # fmt: skip
            monkeypatch.setenv(name, value)
        yield {"s3": s3, "kms_key": kms_key}


def _certificate(data: bytes) -> tuple[x509.Certificate, Any]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert sorted(zf.namelist()) == sorted(certificates.FILES)  # exactly the names EMR reads
        chain, trusted = zf.read("certificateChain.pem"), zf.read("trustedCertificates.pem")
        assert chain == trusted  # self-signed: its own trust anchor
        private = zf.read("privateKey.pem")
        assert private.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, as openssl writes it
        key = serialization.load_pem_private_key(private, password=None)
    return x509.load_pem_x509_certificate(chain), key


@pytest.mark.parametrize(
    ("region", "name"), [("us-east-1", "*.ec2.internal"), ("eu-west-1", "*.eu-west-1.compute.internal")]
)
def test_the_certificate_names_the_regions_private_dns_and_matches_its_key(region: str, name: str) -> None:
    now = datetime.now(UTC)
    data, not_after = certificates.make_certificates(region, 365, now)
    certificate, key = _certificate(data)
    assert certificate.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value == name
    assert certificate.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value.get_values_for_type(x509.DNSName) == [name]
    assert certificate.not_valid_after_utc == not_after
    assert timedelta(days=364) < not_after - now <= timedelta(days=365)
    assert key.public_key().public_numbers() == certificate.public_key().public_numbers()  # type: ignore[union-attr]


def test_stored_under_the_project_key_then_kept_until_it_nears_its_end(aws: dict[str, Any]) -> None:
    settings = certificates.Settings.from_env()
    now = datetime.now(UTC)
    first, renewed = certificates.ensure(aws["s3"], settings, now)
    assert renewed
    head = aws["s3"].head_object(Bucket=BUCKET, Key=KEY)
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == aws["kms_key"]
    stored = aws["s3"].get_object(Bucket=BUCKET, Key=KEY)["Body"].read()
    assert _certificate(stored)[0].not_valid_after_utc == first

    # a day later nothing changes; within RENEW_BEFORE_DAYS of the end a new certificate replaces it
    assert certificates.ensure(aws["s3"], settings, now + timedelta(days=1)) == (first, False)
    late = first - timedelta(days=certificates.RENEW_BEFORE_DAYS - 1)
    second, renewed = certificates.ensure(aws["s3"], settings, late)
    assert renewed and second > first
    assert aws["s3"].get_object(Bucket=BUCKET, Key=KEY)["Body"].read() != stored


def test_the_daily_call_reports_the_days_left(aws: dict[str, Any]) -> None:
    result = certificates.handler({"source": "aws.events"}, None)
    assert result["renewed"] and 364 < result["days_left"] <= 365
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    (metric,) = cloudwatch.list_metrics(Namespace="mlpipe/EmrCertificates")["Metrics"]
    assert metric["MetricName"] == "DaysToExpiry"
    assert metric["Dimensions"] == [{"Name": "Environment", "Value": "dev"}]
    assert not certificates.handler({"source": "aws.events"}, None)["renewed"]


def _custom_resource(kind: str) -> dict[str, Any]:
    return {
        "RequestType": kind, "ResponseURL": "https://cloudformation-response.example/presigned",
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/MlpipeDev-Emr/1", "RequestId": "r1",
        "LogicalResourceId": "Certificates", "ResourceType": "Custom::EmrCertificates",
    }  # fmt: skip


@pytest.fixture
def responses(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What the function PUTs to CloudFormation's pre-signed URL."""
    sent: list[dict[str, Any]] = []

    class _Response:
        def __enter__(self) -> _Response:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def read(self) -> bytes:
            return b""

    def urlopen(request: Any, timeout: float) -> _Response:
        assert request.get_method() == "PUT" and request.full_url.startswith("https://")
        sent.append(json.loads(request.data))
        return _Response()

    monkeypatch.setattr(certificates.urllib.request, "urlopen", urlopen)
    return sent


def test_create_answers_cloudformation_and_delete_removes_the_private_key(
    aws: dict[str, Any], responses: list[dict[str, Any]]
) -> None:
    certificates.handler(_custom_resource("Create"), None)
    (created,) = responses
    assert created["Status"] == "SUCCESS" and created["PhysicalResourceId"] == f"s3://{BUCKET}/{KEY}"
    assert datetime.fromisoformat(created["Data"]["NotAfter"]) > datetime.now(UTC) + timedelta(days=364)

    certificates.handler(_custom_resource("Update"), None)  # current: kept, not renewed
    assert responses[-1]["Status"] == "SUCCESS" and responses[-1]["Reason"] == "current"

    # a renewal in a versioned bucket leaves the earlier key as a version: Delete removes every one
    aws["s3"].put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    settings = certificates.Settings.from_env()
    certificates.ensure(aws["s3"], settings, datetime.now(UTC) + timedelta(days=330))
    certificates.ensure(aws["s3"], settings, datetime.now(UTC) + timedelta(days=700))
    certificates.handler({**_custom_resource("Delete"), "PhysicalResourceId": f"s3://{BUCKET}/{KEY}"}, None)
    assert responses[-1]["Status"] == "SUCCESS"
    versions = aws["s3"].list_object_versions(Bucket=BUCKET)
    assert not versions.get("Versions") and not versions.get("DeleteMarkers")


def test_a_failure_is_reported_to_cloudformation_not_left_waiting(
    aws: dict[str, Any], responses: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CERTIFICATES_BUCKET", "no-such-bucket")
    result = certificates.handler(_custom_resource("Update"), None)  # returns: no asynchronous retry
    assert "NoSuchBucket" in result["failed"]
    monkeypatch.delenv("CERTIFICATE_DAYS")  # a broken environment is answered too
    certificates.handler(_custom_resource("Create"), None)
    first, second = responses
    assert first["Status"] == "FAILED" and "NoSuchBucket" in first["Reason"]
    assert second["Status"] == "FAILED" and "CERTIFICATE_DAYS" in second["Reason"]
