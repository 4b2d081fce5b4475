"""What a fresh account gets wrong, checked before a deploy or a run (`mlpipe preflight`).

- EC2 vCPU quotas of the GPU families the deployment launches, On-Demand and Spot, against the largest job
  each can get (new accounts start at 0: EC2 user guide, "Spot Instance quotas" and "On-Demand Instance
  quotas"). The quotas are found by name: `Running On-Demand <group> instances`, `All <group> Spot Instance
  Requests`, where the group is `G and VT` or `P`.
- Lambda: with `pipeline.lambda_reserved_concurrency`, the reservations must leave the account 100 unreserved
  executions (Lambda refuses a reservation that goes below).
- The CDK bootstrap stack's version, against what the synthesized app requires.
- EMR's TLS certificates, once the Emr stack is deployed: present, and more than 30 days from their end.

Each check reads its AWS answers first (`gather`), then decides without AWS (`evaluate`), so that the
decisions are tested with recorded answers where moto has no model of the call.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from mlpipe.config import MlpipeConfig
from mlpipe.instances import GPU_INSTANCES

UNRESERVED_MINIMUM = 100
LAMBDA_FUNCTIONS_PER_WORKLOAD = 3
MIN_BOOTSTRAP_VERSION = 6  # CDK v2's modern synthesis
CERTIFICATES_KEY = "emr/tls/certificates.zip"
CERTIFICATES_ALARM_DAYS = 30


@dataclass(frozen=True)
class Finding:
    passed: bool
    """False: a deploy or a run would fail until it is fixed."""
    check: str
    message: str
    fix: str = ""

    def line(self) -> str:
        status = "ok  " if self.passed else "FAIL"
        return f"{status} {self.check}: {self.message}" + (f"; fix: {self.fix}" if self.fix else "")


@dataclass
class Answers:
    """What AWS said: everything `evaluate` needs."""

    account: str
    region: str
    ec2_quotas: dict[str, dict[str, Any]] = field(default_factory=dict)  # quota name -> Quota
    lambda_settings: dict[str, Any] = field(default_factory=dict)  # GetAccountSettings' AccountLimit
    lambda_reserved_now: int = 0
    """What this deployment's functions reserve already: the account's unreserved figure excludes it."""
    lambda_quota_code: str = ""
    bootstrap_version: int | None = None
    required_bootstrap_version: int = MIN_BOOTSTRAP_VERSION
    emr_deployed: bool = False
    certificates_present: bool = False
    certificates_not_after: datetime | None = None
    """The end of validity the Emr stack's function records in the object's metadata."""


def quota_group(instance_type: str) -> str:
    """The EC2 vCPU quota group of an instance type (G and VT, or P)."""
    family = re.match(r"[a-z]+", instance_type)
    letters = family.group() if family else ""
    if letters.startswith(("g", "vt")):
        return "G and VT"
    if letters.startswith("p"):
        return "P"
    raise ValueError(f"{instance_type} is not a GPU instance type mlpipe launches")


def needed_vcpus(config: MlpipeConfig) -> dict[str, int]:
    """Quota name -> the vCPUs that the largest job of that market and group needs at once."""
    batch = config.batch
    needed: dict[str, int] = {}

    def need(name: str, vcpus: int) -> None:
        needed[name] = max(needed.get(name, 0), vcpus)

    for t in batch.spot_instance_types:
        need(f"All {quota_group(t)} Spot Instance Requests", GPU_INSTANCES[t].vcpus)
    for t in batch.on_demand_instance_types:
        need(f"Running On-Demand {quota_group(t)} instances", GPU_INSTANCES[t].vcpus)
    node = GPU_INSTANCES[batch.multinode_instance_type]
    need(f"Running On-Demand {quota_group(node.name)} instances", batch.multinode_nodes * node.vcpus)
    return needed


def evaluate(config: MlpipeConfig, answers: Answers, *, now: datetime) -> list[Finding]:
    findings = []
    for name, vcpus in sorted(needed_vcpus(config).items()):
        quota = answers.ec2_quotas.get(name)
        if quota is None:
            findings.append(Finding(False, "ec2 quota", f"no quota named {name!r} in {answers.region}"))
            continue
        value = int(quota["Value"])
        fix = (
            f"aws service-quotas request-service-quota-increase --region {answers.region} --service-code ec2 "
            f"--quota-code {quota['QuotaCode']} --desired-value {vcpus}"
        )
        passed = value >= vcpus
        findings.append(
            Finding(
                passed,
                "ec2 quota",
                f"{name} is {value} vCPUs, the largest job needs {vcpus}",
                "" if passed else fix,
            )
        )

    reserved = config.pipeline.lambda_reserved_concurrency
    limit = answers.lambda_settings
    if reserved is None:
        findings.append(Finding(True, "lambda", "no reserved concurrency configured"))
    else:
        wanted = reserved * LAMBDA_FUNCTIONS_PER_WORKLOAD * len(config.workloads)
        unreserved = int(limit.get("UnreservedConcurrentExecutions", 0)) + answers.lambda_reserved_now
        total = int(limit.get("ConcurrentExecutions", 0))
        passed = unreserved - wanted >= UNRESERVED_MINIMUM
        message = (
            f"reserving {wanted} of {unreserved} unreserved executions (account limit {total}) leaves "
            f"{unreserved - wanted}; Lambda keeps at least {UNRESERVED_MINIMUM}"
        )
        fix = (
            f"aws service-quotas request-service-quota-increase --region {answers.region} --service-code lambda "
            f"--quota-code {answers.lambda_quota_code} --desired-value {total + wanted + UNRESERVED_MINIMUM - unreserved}"
            if answers.lambda_quota_code
            else "lower pipeline.lambda_reserved_concurrency, or ask for more Lambda concurrency in Service Quotas"
        )
        findings.append(Finding(passed, "lambda", message, "" if passed else fix))

    bootstrap_fix = f"cdk bootstrap aws://{answers.account}/{answers.region}"
    if answers.bootstrap_version is None:
        findings.append(
            Finding(False, "cdk bootstrap", "the account and region are not bootstrapped", bootstrap_fix)
        )
    else:
        passed = answers.bootstrap_version >= answers.required_bootstrap_version
        message = f"version {answers.bootstrap_version}, the app needs {answers.required_bootstrap_version}"
        findings.append(Finding(passed, "cdk bootstrap", message, "" if passed else bootstrap_fix))

    if not answers.emr_deployed:
        findings.append(Finding(True, "emr certificates", "made by the Emr stack when it deploys"))
    elif not answers.certificates_present or answers.certificates_not_after is None:
        fix = "deploy the Emr stack again (its custom resource makes them): cdk deploy --all"
        findings.append(
            Finding(False, "emr certificates", f"no {CERTIFICATES_KEY} in the artifacts bucket", fix)
        )
    else:
        days = (answers.certificates_not_after - now).days
        passed = days > CERTIFICATES_ALARM_DAYS
        fix = "the daily renewal failed: see the Emr stack's TlsCertificates function logs, then invoke it"
        findings.append(
            Finding(passed, "emr certificates", f"valid for {days} more days", "" if passed else fix)
        )
    return findings


def required_bootstrap_version(cdk_out: Path) -> int:
    """The highest bootstrap version that the synthesized app's stacks require (CDK v2's minimum without one)."""
    manifest = cdk_out / "manifest.json"
    if not manifest.is_file():
        return MIN_BOOTSTRAP_VERSION
    artifacts = json.loads(manifest.read_text()).get("artifacts", {}).values()
    versions = [
        int(a.get("properties", {}).get("requiresBootstrapStackVersion", MIN_BOOTSTRAP_VERSION))
        for a in artifacts
    ]
    return max([MIN_BOOTSTRAP_VERSION, *versions])


def gather(config: MlpipeConfig, session: Any, *, cdk_out: Path, qualifier: str = "hnb659fds") -> Answers:
    """Read-only calls: STS, Service Quotas, Lambda, SSM, CloudFormation and S3."""
    from botocore.exceptions import ClientError

    region = session.region_name
    answers = Answers(
        account=session.client("sts").get_caller_identity()["Account"],
        region=region,
        required_bootstrap_version=required_bootstrap_version(cdk_out),
    )
    quotas = session.client("service-quotas")
    for page in quotas.get_paginator("list_service_quotas").paginate(ServiceCode="ec2"):
        answers.ec2_quotas.update({q["QuotaName"]: q for q in page["Quotas"]})
    for page in quotas.get_paginator("list_service_quotas").paginate(ServiceCode="lambda"):
        for q in page["Quotas"]:
            if q["QuotaName"] == "Concurrent executions":
                answers.lambda_quota_code = q["QuotaCode"]
    lambda_ = session.client("lambda")
    answers.lambda_settings = lambda_.get_account_settings()["AccountLimit"]
    ours = config.stack_name("Workload-")  # the pipeline functions' names start with their stack's
    for page in lambda_.get_paginator("list_functions").paginate():
        for function in page["Functions"]:
            if function["FunctionName"].startswith(ours):
                concurrency = lambda_.get_function_concurrency(FunctionName=function["FunctionName"])
                answers.lambda_reserved_now += int(concurrency.get("ReservedConcurrentExecutions", 0))
    try:
        parameter = session.client("ssm").get_parameter(Name=f"/cdk-bootstrap/{qualifier}/version")
        answers.bootstrap_version = int(parameter["Parameter"]["Value"])
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ParameterNotFound":
            raise
    cloudformation = session.client("cloudformation")
    try:
        cloudformation.describe_stacks(StackName=config.stack_name("Emr"))
        answers.emr_deployed = True
    except ClientError as exc:
        if "does not exist" not in str(exc):
            raise
    if answers.emr_deployed:
        (storage,) = cloudformation.describe_stacks(StackName=config.stack_name("Storage"))["Stacks"]
        bucket = next(
            o["OutputValue"] for o in storage.get("Outputs", []) if o["OutputKey"] == "ArtifactsBucket"
        )
        try:
            head = session.client("s3").head_object(Bucket=bucket, Key=CERTIFICATES_KEY)
            answers.certificates_present = True
            not_after = head.get("Metadata", {}).get("not-after")
            answers.certificates_not_after = datetime.fromisoformat(not_after) if not_after else None
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("404", "NoSuchKey", "NotFound"):
                raise
    return answers
