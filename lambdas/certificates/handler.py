"""EMR in-transit encryption's certificates, made and renewed by the deployment: the Emr stack's custom resource
calls this function when it is created or updated, and a schedule calls it every 6 hours.

It keeps one object: a zip with `privateKey.pem`, `certificateChain.pem` and `trustedCertificates.pem`, the names
EMR's security configuration requires ("Providing certificates for encrypting data in transit"), for a
self-signed certificate of the region's private DNS names (`*.ec2.internal` in us-east-1,
`*.<region>.compute.internal` elsewhere). The object is encrypted with the project key and carries the
certificate's end of validity in its metadata. Each call renews a certificate that ends within
RENEW_BEFORE_DAYS, and reports the days left as the metric `DaysToExpiry`, on which an alarm fires 30 days
before the end. A custom resource's Delete removes the object with every earlier version: it holds a private
key.
"""

from __future__ import annotations

import io
import json
import logging
import os
import urllib.request
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

LOG = logging.getLogger("mlpipe.certificates")
LOG.setLevel(logging.INFO)
FILES = ("privateKey.pem", "certificateChain.pem", "trustedCertificates.pem")
RENEW_BEFORE_DAYS = 45
METRIC = "DaysToExpiry"
NOT_AFTER = "not-after"  # the object's metadata key


@dataclass(frozen=True)
class Settings:
    bucket: str
    key: str
    kms_key_arn: str
    region: str
    validity_days: int
    namespace: str
    environment: str

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            bucket=env["CERTIFICATES_BUCKET"],
            key=env["CERTIFICATES_KEY"],
            kms_key_arn=env["KMS_KEY_ARN"],
            region=env["AWS_REGION"],
            validity_days=int(env["CERTIFICATE_DAYS"]),
            namespace=env["METRIC_NAMESPACE"],
            environment=env["MLPIPE_ENV"],
        )


def domain(region: str) -> str:
    """The private DNS names of the region's EC2 instances, which EMR's nodes present."""
    return "*.ec2.internal" if region == "us-east-1" else f"*.{region}.compute.internal"


def make_certificates(region: str, days: int, now: datetime) -> tuple[bytes, datetime]:
    """The zip EMR expects, and the certificate's end of validity. Self-signed: it is its own trust anchor."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mlpipe"),
            x509.NameAttribute(NameOID.COMMON_NAME, domain(region)),
        ]
    )
    not_after = (now + timedelta(days=days)).replace(microsecond=0)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain(region))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        for file, data in zip(FILES, (private, pem, pem), strict=True):
            zf.writestr(file, data)
    return archive.getvalue(), not_after


def stored_not_after(s3: Any, settings: Settings) -> datetime | None:
    """The stored certificate's end of validity, or None when there is none. Existence is asked with
    ListObjectsV2 on the key as prefix (what the role's ListBucket allows): HeadObject on a missing key
    answers 403 to a role that may not list the bucket."""
    listed = s3.list_objects_v2(Bucket=settings.bucket, Prefix=settings.key, MaxKeys=1).get("Contents", [])
    if not any(o["Key"] == settings.key for o in listed):
        return None
    value = s3.head_object(Bucket=settings.bucket, Key=settings.key).get("Metadata", {}).get(NOT_AFTER)
    return datetime.fromisoformat(value) if value else None


def delete_all_versions(s3: Any, settings: Settings) -> int:
    """The object and every earlier version of it (the bucket is versioned): no copy of a key stays."""
    deleted = 0
    for page in s3.get_paginator("list_object_versions").paginate(
        Bucket=settings.bucket, Prefix=settings.key
    ):
        for version in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
            if version["Key"] == settings.key:
                s3.delete_object(Bucket=settings.bucket, Key=settings.key, VersionId=version["VersionId"])
                deleted += 1
    return deleted


def ensure(s3: Any, settings: Settings, now: datetime) -> tuple[datetime, bool]:
    """The stored certificate's end of validity, after renewing it when it is missing or ends within
    RENEW_BEFORE_DAYS; and whether it was renewed."""
    not_after = stored_not_after(s3, settings)
    if not_after is not None and not_after - now > timedelta(days=RENEW_BEFORE_DAYS):
        return not_after, False
    data, not_after = make_certificates(settings.region, settings.validity_days, now)
    s3.put_object(
        Bucket=settings.bucket,
        Key=settings.key,
        Body=data,
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=settings.kms_key_arn,
        Metadata={NOT_AFTER: not_after.isoformat()},
    )
    return not_after, True


def report(cloudwatch: Any, settings: Settings, not_after: datetime, now: datetime) -> float:
    days = round((not_after - now).total_seconds() / 86400, 2)
    cloudwatch.put_metric_data(
        Namespace=settings.namespace,
        MetricData=[
            {
                "MetricName": METRIC,
                "Dimensions": [{"Name": "Environment", "Value": settings.environment}],
                "Value": days,
                "Unit": "None",
            }
        ],
    )
    return days


def _respond(event: dict[str, Any], status: str, reason: str, data: dict[str, str]) -> None:
    """CloudFormation's custom-resource response: a PUT of this JSON to the pre-signed ResponseURL."""
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason[:1000],
            "PhysicalResourceId": event.get("PhysicalResourceId") or event["LogicalResourceId"],
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
            "Data": data,
        }
    ).encode()
    if not event["ResponseURL"].startswith("https://"):
        raise ValueError(f"ResponseURL is not https: {event['ResponseURL'][:40]}")
    request = urllib.request.Request(  # noqa: S310 (https only, checked above)
        event["ResponseURL"],
        data=body,
        method="PUT",
        headers={"Content-Type": "", "Content-Length": str(len(body))},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        response.read()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if "RequestType" not in event:  # the schedule: an error fails the invocation, and EventBridge retries
        settings, now = Settings.from_env(), datetime.now(UTC)
        not_after, renewed = ensure(boto3.client("s3"), settings, now)
        days = report(boto3.client("cloudwatch"), settings, not_after, now)
        LOG.info(json.dumps({"not_after": not_after.isoformat(), "renewed": renewed, "days_left": days}))
        return {"not_after": not_after.isoformat(), "renewed": renewed, "days_left": days}
    # A custom resource: answer CloudFormation whatever happens, and return (not raise) after a failure, so
    # that Lambda's asynchronous retries do not act again after CloudFormation moved on (a rollback's Delete).
    try:
        settings, now = Settings.from_env(), datetime.now(UTC)
        s3 = boto3.client("s3")
        event.setdefault("PhysicalResourceId", f"s3://{settings.bucket}/{settings.key}")
        if event["RequestType"] == "Delete":
            deleted = delete_all_versions(s3, settings)
            _respond(event, "SUCCESS", f"deleted {deleted} version(s)", {})
            return {"deleted": deleted}
        not_after, renewed = ensure(s3, settings, now)
        report(boto3.client("cloudwatch"), settings, not_after, now)
        _respond(event, "SUCCESS", "renewed" if renewed else "current", {"NotAfter": not_after.isoformat()})
        return {"not_after": not_after.isoformat(), "renewed": renewed}
    except Exception as exc:
        LOG.exception("certificates: %s failed", event.get("RequestType"))
        _respond(event, "FAILED", f"{type(exc).__name__}: {exc}", {})
        return {"failed": f"{type(exc).__name__}: {exc}"}
