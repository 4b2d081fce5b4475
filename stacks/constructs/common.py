"""Small building blocks that several constructs share: log groups, exact IAM grants, cdk-nag acknowledgements.

mlpipe writes its IAM statements with exact actions (no `s3:GetObject*`-style wildcards, which CDK's
`grant_*` helpers use). A resource wildcard remains only where it is the resource's nature (the objects
under a prefix, runtime-created model packages) or the API's requirement; each such place is acknowledged
for that one resource and that one finding, with the reason, and listed in docs/security.md.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

from aws_cdk import Acknowledgment, AssetHashType, CfnResource, RemovalPolicy, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct, IConstruct

from stacks.defaults import (
    LAMBDA_ARCHITECTURE,
    LAMBDA_LAYER_ZIP,
    LAMBDA_REQUIREMENTS,
    LAMBDA_RUNTIME,
    LAMBDAS_DIR,
    log_retention,
)

S3_READ = ("s3:GetObject",)
S3_WRITE = ("s3:PutObject", "s3:AbortMultipartUpload")
S3_READ_WRITE = (*S3_READ, *S3_WRITE)
S3_READ_WRITE_DELETE = (*S3_READ_WRITE, "s3:DeleteObject")
KMS_DECRYPT = ("kms:Decrypt",)
KMS_ENCRYPT_DECRYPT = ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey")


def encrypted_log_group(
    scope: Construct,
    construct_id: str,
    *,
    key: kms.IKey,
    retention_days: int,
    removal: RemovalPolicy,
    name: str | None = None,
) -> logs.LogGroup:
    """A log group encrypted with the project key, with the configured retention."""
    return logs.LogGroup(
        scope,
        construct_id,
        log_group_name=name,
        encryption_key=key,
        retention=log_retention(retention_days),
        removal_policy=removal,
    )


def drop_redundant_dependency(resource: Construct, role: iam.IRole) -> None:
    """CDK adds DependsOn the role next to the GetAtt of its ARN; cfn-lint (W3005) rightly calls it redundant.

    The DependsOn on the role's DefaultPolicy stays: that one orders the policy before first use.
    """
    cfn = resource.node.default_child
    policy = role.node.try_find_child("DefaultPolicy")
    if (
        isinstance(cfn, CfnResource)
        and policy is not None
        and isinstance(policy.node.default_child, CfnResource)
    ):
        cfn.add_override("DependsOn", [Stack.of(resource).get_logical_id(policy.node.default_child)])


def lambda_layer(scope: Construct, construct_id: str) -> lambda_.LayerVersion:
    """The Lambdas' runtime dependencies (lambdas/requirements.txt), built by `make setup`."""
    if not LAMBDA_LAYER_ZIP.is_file():
        raise RuntimeError(f"{LAMBDA_LAYER_ZIP} is missing: run `make setup` (it builds the Lambda layer)")
    # A function of the pinned requirements and the target platform: hash those, not the zip's megabytes.
    layer_hash = hashlib.sha256(
        LAMBDA_REQUIREMENTS.read_bytes() + f"{LAMBDA_RUNTIME.name}/{LAMBDA_ARCHITECTURE.name}".encode()
    ).hexdigest()
    return lambda_.LayerVersion(
        scope,
        construct_id,
        code=lambda_.Code.from_asset(
            str(LAMBDA_LAYER_ZIP), asset_hash=layer_hash, asset_hash_type=AssetHashType.CUSTOM
        ),
        compatible_runtimes=[LAMBDA_RUNTIME],
        compatible_architectures=[LAMBDA_ARCHITECTURE],
        description="mlpipe Lambda runtime dependencies (lambdas/requirements.txt)",
    )


def lambda_code() -> lambda_.Code:
    """Every mlpipe Lambda's code: the lambdas/ folder, each function naming its own handler."""
    return lambda_.Code.from_asset(
        str(LAMBDAS_DIR), exclude=["**/__pycache__", "**/*.pyc", "requirements.txt"]
    )


def content_name(scope: IConstruct, prefix: str, content: Any) -> str:
    """`<prefix>-<digest of content>`, the content as CloudFormation receives it (a reference as its expression).
    For a named resource that any change replaces (Glue's and EMR's security configurations): new content gets a
    new name, so CloudFormation can create the replacement before it deletes the old one."""
    resolved = Stack.of(scope).resolve(content)
    digest = hashlib.sha256(json.dumps(resolved, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return f"{prefix}-{digest[:8]}"


def acknowledge(construct: IConstruct, finding: str, reason: str) -> None:
    """Acknowledge one cdk-nag finding (such as `AwsSolutions-IAM5[Resource::*]`) on one construct."""
    Validations.of(construct).acknowledge(Acknowledgment(id=finding, reason=reason))


def flatten(value: Any) -> str:
    """cdk-nag's rendering of a resolved CloudFormation value (a port of its flattenCfnReference)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.replace("${", "<").replace("}", ">")
    if isinstance(value, dict):
        if "Fn::Join" in value:
            delimiter, items = value["Fn::Join"]
            return delimiter.join(flatten(i) for i in items)
        if "Fn::Sub" in value:
            return flatten(value["Fn::Sub"])
        if "Fn::GetAtt" in value:
            resource, attribute = value["Fn::GetAtt"]
            return f"<{flatten(resource)}.{flatten(attribute)}>"
        if "Fn::ImportValue" in value:
            return flatten(value["Fn::ImportValue"])
        if "Ref" in value:
            return f"<{flatten(value['Ref'])}>"
    return json.dumps(value, separators=(",", ":"))


def acknowledge_resource_wildcard(principal: IConstruct, resource: str, reason: str) -> None:
    """Acknowledge the IAM5 finding for one wildcard resource of `principal`'s policy."""
    _acknowledge_rendered_wildcard(principal, flatten(Stack.of(principal).resolve(resource)), reason)


def _acknowledge_rendered_wildcard(principal: IConstruct, rendered: str, reason: str) -> None:
    acknowledge(principal, f"AwsSolutions-IAM5[Resource::{rendered}]", reason)


def allow(
    role: iam.IRole,
    actions: Sequence[str],
    resources: Sequence[str],
    *,
    reason: str | None = None,
    conditions: dict[str, Any] | None = None,
    sid: str | None = None,
) -> None:
    """Add one statement with exact actions; acknowledge each wildcard resource with `reason`."""
    if any(a.endswith("*") for a in actions):
        raise ValueError(f"wildcard action in {actions}: name the exact actions")
    # Every jsii call is a round trip to the kernel (about half a millisecond): Grant.add_to_principal adds the
    # statement in one, where creating it and add_to_principal_policy take four (the result's two properties
    # are fetched).
    if sid is None:
        iam.Grant.add_to_principal(
            grantee=role, actions=list(actions), resource_arns=list(resources), conditions=conditions
        )
    else:
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid=sid, actions=list(actions), resources=list(resources), conditions=conditions
            )
        )
    # A wildcard is written as one (`arn_for_objects("runs/*")`, `format_arn(resource_name="*")`); one call
    # renders them all for their acknowledgements. (One hidden in a token would fail cdk-nag's check.)
    wildcards = [r for r in resources if "*" in r]
    if not wildcards:
        return
    if reason is None:
        raise ValueError(f"{wildcards[0]} is a wildcard resource: give the reason it must be one")
    for resolved in Stack.of(role).resolve(wildcards):
        _acknowledge_rendered_wildcard(role, flatten(resolved), reason)


def allow_objects(
    role: iam.IRole, bucket: s3.IBucket, prefixes: Iterable[str], actions: Sequence[str]
) -> None:
    """Object actions under each prefix of `bucket`, plus listing exactly those prefixes."""
    prefixes = list(prefixes)
    for prefix in prefixes:
        allow(
            role,
            actions,
            [bucket.arn_for_objects(f"{prefix}*")],
            reason=f"The role works on the objects under {prefix} (keys are written at run time); "
            "nothing outside that prefix.",
        )
    allow(
        role,
        ["s3:ListBucket"],
        [bucket.bucket_arn],
        conditions={"StringLike": {"s3:prefix": [f"{p}*" for p in prefixes]}},
    )


def allow_key(role: iam.IRole, key: kms.IKey, actions: Sequence[str] = KMS_ENCRYPT_DECRYPT) -> None:
    """Use of the project key for SSE-KMS objects, encrypted topics and job bookmarks."""
    allow(role, actions, [key.key_arn])
