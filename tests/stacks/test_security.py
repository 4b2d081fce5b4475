"""Security by default across every template: IAM, encryption, cdk-nag, cfn-lint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.xdist_group("cdk")


# The only actions allowed on Resource "*": APIs without resource-level permissions (docs/security.md lists
# where and why). CDK's EmrCreateCluster also writes DescribeCluster, TerminateJobFlows and AddTags on "*";
# the state machine's role narrows them (test_pipeline_stack checks where they go).
RESOURCE_STAR_ACTIONS = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
    "ecr:GetAuthorizationToken",
    "cloudwatch:PutMetricData",
    "elasticmapreduce:RunJobFlow",
    "sagemaker:ListModelPackages",
    "batch:DescribeJobs",
}


def _statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            out += props["PolicyDocument"]["Statement"]
        if resource["Type"] == "AWS::IAM::Role":
            out += [s for p in props.get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
    return out


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize("synth_name", ["both", "prod"])
def test_no_wildcard_actions_and_resource_star_only_where_the_api_requires(
    synth_name: str, request: Any
) -> None:
    synth = request.getfixturevalue(synth_name)
    for concern in synth.templates:
        for statement in _statements(synth.json(concern)):
            actions = _as_list(statement["Action"])
            assert not [a for a in actions if "*" in a], f"{concern}: wildcard action in {statement}"
            if "*" in _as_list(statement.get("Resource", [])) and statement["Effect"] == "Allow":
                extra = set(actions) - RESOURCE_STAR_ACTIONS
                assert not extra, f"{concern}: {extra} on Resource '*' ({statement})"


def test_data_buckets_are_kms_encrypted_private_tls_only_and_logged(dev: Any) -> None:
    buckets = dev.json("Storage")["Resources"]
    data = {k: v for k, v in buckets.items() if v["Type"] == "AWS::S3::Bucket" and "LogsBucket" not in k}
    assert len(data) == 3
    for name, bucket in data.items():
        p = bucket["Properties"]
        sse = p["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        assert sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms", name
        assert sse["BucketKeyEnabled"] is True
        assert p["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        assert "DestinationBucketName" in p["LoggingConfiguration"], name
        assert bucket["DeletionPolicy"] == "Retain", name
    policies = [v for v in buckets.values() if v["Type"] == "AWS::S3::BucketPolicy"]
    assert len(policies) == 4
    for policy in policies:
        deny = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
        assert deny and deny[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_artifacts_are_versioned_and_checkpoints_expire(dev: Any) -> None:
    (artifacts,) = [
        v
        for k, v in dev.json("Storage")["Resources"].items()
        if k.startswith("StorageArtifactsBucket") and v["Type"] == "AWS::S3::Bucket"
    ]
    p = artifacts["Properties"]
    assert p["VersioningConfiguration"] == {"Status": "Enabled"}
    rules = {r["Id"]: r for r in p["LifecycleConfiguration"]["Rules"]}
    assert (
        rules["expire-checkpoints"]["Prefix"] == "checkpoints/"
        and rules["expire-checkpoints"]["ExpirationInDays"] == 30
    )
    assert rules["expire-tmp"]["Prefix"] == "tmp/" and rules["expire-tmp"]["ExpirationInDays"] == 7


@pytest.mark.parametrize(("purpose", "days"), [("Raw", 30), ("Curated", 7), ("Artifacts", 30)])
def test_an_overwritten_or_deleted_object_can_be_restored_for_a_while(
    dev: Any, purpose: str, days: int
) -> None:
    """Versioning keeps the previous version of what a run overwrites or deletes; a lifecycle rule over the
    whole bucket expires it after `days`, and removes the delete markers left with nothing behind them."""
    (bucket,) = [
        v["Properties"]
        for k, v in dev.json("Storage")["Resources"].items()
        if k.startswith(f"Storage{purpose}Bucket") and v["Type"] == "AWS::S3::Bucket"
    ]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    rules = bucket["LifecycleConfiguration"]["Rules"]
    (whole,) = [r for r in rules if "Prefix" not in r and "NoncurrentVersionExpiration" in r]
    assert whole["NoncurrentVersionExpiration"] == {"NoncurrentDays": days}
    assert whole["ExpiredObjectDeleteMarker"] is True and "ExpirationInDays" not in whole  # S3 refuses both
    # what expires by prefix leaves a noncurrent version: it goes the next day, not after `days`
    for rule in (r for r in rules if "ExpirationInDays" in r):
        assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}, rule["Id"]


def test_lambdas_encrypt_their_environment_with_the_project_key_and_reserve_only_when_asked(
    both: Any, prod: Any
) -> None:
    key = next(k for k, v in both.json("Storage")["Resources"].items() if v["Type"] == "AWS::KMS::Key")

    def functions(synth: Any) -> list[tuple[str, dict[str, Any]]]:
        return [
            (c, r["Properties"])
            for c in synth.templates
            if c.startswith("Workload-")
            for r in synth.json(c)["Resources"].values()
            if r["Type"] == "AWS::Lambda::Function"
        ]

    assert len(functions(both)) == 6
    for concern, function in functions(both):
        # the Storage stack's key, as that stack hands it over
        assert both.handed_over(concern, function["KmsKeyArn"]) == ("Storage", {"Fn::GetAtt": [key, "Arn"]})
        assert "ReservedConcurrentExecutions" not in function  # by default the account's pool stays whole
    # prod's test configuration sets pipeline.lambda_reserved_concurrency = 5
    assert [f["ReservedConcurrentExecutions"] for _, f in functions(prod)] == [5, 5, 5]


def test_key_rotates(dev: Any) -> None:
    dev.template("Storage").has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


def test_each_workloads_alarms_may_publish_to_its_encrypted_topic(both: Any) -> None:
    """enforce_ssl gives a topic a policy, and a topic policy replaces SNS's default one: it must let this
    account's alarms publish (re:Post "Why didn't I receive an SNS notification for my CloudWatch alarm
    trigger?"). The key lets CloudWatch encrypt for the topic with SNS's documented statement, which has no
    condition (SNS guide, "Enable compatibility between event sources from AWS services and encrypted
    topics")."""
    for concern in (c for c in both.templates if c.startswith("Workload-")):
        resources = both.json(concern)["Resources"]
        (topic,) = (name for name, r in resources.items() if r["Type"] == "AWS::SNS::Topic")
        (policy,) = (r["Properties"] for r in resources.values() if r["Type"] == "AWS::SNS::TopicPolicy")
        assert policy["Topics"] == [{"Ref": topic}], concern
        allowed = [
            s
            for s in policy["PolicyDocument"]["Statement"]
            if s["Effect"] == "Allow" and s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
        ]
        assert [(s["Action"], s["Resource"]) for s in allowed] == [("sns:Publish", {"Ref": topic})], concern
        source = json.dumps(allowed[0]["Condition"]["ArnLike"]["aws:SourceArn"])
        assert ":cloudwatch:" in source and '"AWS::AccountId"' in source and source.endswith(':alarm:*"]]}')

    key_statements = next(
        r["Properties"]["KeyPolicy"]["Statement"]
        for r in both.json("Storage")["Resources"].values()
        if r["Type"] == "AWS::KMS::Key"
    )
    (cloudwatch,) = (
        s for s in key_statements if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    )
    assert sorted(_as_list(cloudwatch["Action"])) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert cloudwatch["Resource"] == "*" and "Condition" not in cloudwatch


def test_destroy_stateful_flag_opts_in_to_deletion(tmp_path: Any, context_for: Any) -> None:
    import aws_cdk as cdk

    from mlpipe.config import load_config
    from stacks.storage_stack import StorageStack

    context = {**context_for("dev"), "destroy_stateful": "true"}
    app = cdk.App(context=context, outdir=str(tmp_path))
    config = load_config(context, environ={})
    stack = StorageStack(app, "S", config=config, env=cdk.Environment(region=config.region))
    template = app.synth().get_stack_by_name(stack.stack_name).template
    policies = {
        r["Type"]: r.get("DeletionPolicy")
        for r in template["Resources"].values()
        if r["Type"] in ("AWS::S3::Bucket", "AWS::KMS::Key")
    }
    assert policies == {"AWS::S3::Bucket": "Delete", "AWS::KMS::Key": "Delete"}


@pytest.mark.parametrize("synth_name", ["both", "prod"])
def test_cdk_nag_reports_nothing_unacknowledged(synth_name: str, request: Any) -> None:
    synth = request.getfixturevalue(synth_name)  # synthesis itself fails on an unacknowledged error
    # The acknowledgements the plugin honoured are in the assembly's metadata: this many, each with a reason.
    acknowledged = [
        entry
        for path in synth.outdir.glob("*.metadata.json")
        for entries in json.loads(path.read_text()).values()
        for entry in entries
        if entry["type"] == "aws:cdk:acknowledged-rules"
    ]
    assert len(acknowledged) > 20
    assert all(len(reason) > 30 for entry in acknowledged for reason in entry["data"].values()), acknowledged[
        :3
    ]
    report = synth.outdir / "validation-report.json"
    if report.exists():
        findings = json.loads(report.read_text())
        assert "AwsSolutions" not in json.dumps(findings), findings


@pytest.mark.parametrize("synth_name", ["both", "prod"])
def test_cfn_lint_finds_no_error_or_warning(synth_name: str, request: Any) -> None:
    from cfnlint.api import ManualArgs, lint_by_config

    synth = request.getfixturevalue(synth_name)
    paths = [str(synth.path(c)) for c in synth.templates]
    # One run over every template (cfn-lint loads its rules once per run), errors and warnings as the
    # cfn-lint command reports them by default (informational rules aside).
    matches = lint_by_config(ManualArgs(templates=paths, regions=[synth.config.region]))
    problems = [f"{Path(m.filename).name}: {m}" for m in matches if m.rule.id[0] in "EW"]
    assert problems == []
