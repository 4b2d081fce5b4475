"""Storage: the project KMS key, the data-lake buckets and the Glue database."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from mlpipe.config import MlpipeConfig
from stacks.constructs.common import acknowledge
from stacks.constructs.handoff import receive
from stacks.defaults import CHECKPOINT_EXPIRY, TMP_EXPIRY, bucket_name, glue_database_name, removal_policy

# How long an overwritten or deleted object's previous version can be restored, per bucket.
RAW_VERSIONS_KEPT = Duration.days(30)
CURATED_VERSIONS_KEPT = Duration.days(7)
ARTIFACT_VERSIONS_KEPT = Duration.days(30)


def _expire_prefix(rule_id: str, prefix: str, after: Duration) -> s3.LifecycleRule:
    """Objects under `prefix` expire after `after`; in a versioned bucket the version that leaves goes the next
    day, not after the bucket's whole keeping time."""
    return s3.LifecycleRule(
        id=rule_id, prefix=prefix, expiration=after, noncurrent_version_expiration=Duration.days(1)
    )


def _expire_noncurrent(kept: Duration) -> s3.LifecycleRule:
    """Old versions go after `kept`; a delete marker left with no version behind it goes too."""
    return s3.LifecycleRule(
        id="expire-noncurrent-versions", noncurrent_version_expiration=kept, expired_object_delete_marker=True
    )


KEY_ARN = "storage/key-arn"  # the handoff path of the project key's ARN


@dataclass(frozen=True)
class DataLake:
    """The lake as another stack sees it: the key, and the buckets imported by their deterministic names."""

    key: kms.IKey
    raw_bucket: s3.IBucket
    curated_bucket: s3.IBucket
    artifacts_bucket: s3.IBucket
    logs_bucket: s3.IBucket


def import_lake(scope: Construct, config: MlpipeConfig) -> DataLake:
    """The lake in another stack: the buckets by their names, the key as the Storage stack hands it over."""
    key = kms.Key.from_key_arn(scope, "Key", receive(scope, config, KEY_ARN))

    def bucket(purpose: str) -> s3.IBucket:
        return s3.Bucket.from_bucket_name(scope, f"{purpose.title()}Bucket", bucket_name(config, purpose))

    return DataLake(
        key=key,
        raw_bucket=bucket("raw"),
        curated_bucket=bucket("curated"),
        artifacts_bucket=bucket("artifacts"),
        logs_bucket=bucket("logs"),
    )


class Storage(Construct):
    """A KMS key with rotation; raw, curated, artifacts and logs buckets; the Glue database.

    Every data bucket blocks public access, enforces TLS, is encrypted with the project key (S3 Bucket Keys
    on, to cut KMS requests) and writes server access logs to the logs bucket. The logs bucket uses SSE-S3:
    S3 server access logging cannot deliver to a bucket encrypted with a customer managed key.
    """

    def __init__(self, scope: Construct, construct_id: str, *, config: MlpipeConfig) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        removal = removal_policy(config)

        self.key = kms.Key(
            self,
            "Key",
            description="mlpipe: encrypts the data lake, logs, topics and job bookmarks",
            enable_key_rotation=True,
            removal_policy=removal,
        )
        # CloudWatch Logs encrypts the project's log groups (Lambda, Step Functions, Batch, Glue) with this
        # key; the condition limits it to log groups of this account and region.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchLogsOfThisAccount",
                principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
                actions=[
                    "kms:Encrypt",
                    "kms:Decrypt",
                    "kms:ReEncryptFrom",
                    "kms:ReEncryptTo",
                    "kms:GenerateDataKey",
                    "kms:GenerateDataKeyWithoutPlaintext",
                    "kms:DescribeKey",
                ],
                resources=["*"],  # in a key policy, "*" means this key
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:*"
                    }
                },
            )
        )
        # CloudWatch alarms publish to the KMS-encrypted notification topics: the statement of SNS's guide
        # ("Enable compatibility between event sources from AWS services and encrypted topics"), which has no
        # condition. Each topic's own policy says which alarms may publish.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToPublishToEncryptedTopics",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
            )
        )

        self.logs_bucket = s3.Bucket(
            self,
            "LogsBucket",
            bucket_name=bucket_name(config, "logs"),
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=removal,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-flow-logs",
                    prefix="vpc-flow-logs/",
                    expiration=Duration.days(config.network.flow_log_retention_days),
                ),
                s3.LifecycleRule(
                    id="expire-logs",
                    expiration=Duration.days(365),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                ),
            ],
        )
        # VPC flow logs (Network stack) are delivered here by the log delivery service: declared in this
        # stack's bucket policy, so no service edits it behind CloudFormation's back.
        delivery = iam.ServicePrincipal("delivery.logs.amazonaws.com")
        from_this_account = {
            "StringEquals": {"aws:SourceAccount": stack.account},
            "ArnLike": {"aws:SourceArn": f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:*"},
        }
        self.logs_bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="FlowLogDeliveryWrite",
                principals=[delivery],
                actions=["s3:PutObject"],
                resources=[self.logs_bucket.arn_for_objects(f"vpc-flow-logs/AWSLogs/{stack.account}/*")],
                conditions={
                    **from_this_account,
                    "StringEquals": {
                        "aws:SourceAccount": stack.account,
                        "s3:x-amz-acl": "bucket-owner-full-control",
                    },
                },
            )
        )
        self.logs_bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="FlowLogDeliveryAclCheck",
                principals=[delivery],
                actions=["s3:GetBucketAcl"],
                resources=[self.logs_bucket.bucket_arn],
                conditions=from_this_account,
            )
        )
        acknowledge(
            self.logs_bucket,
            "AwsSolutions-S1",
            "This is the server access log target of every other bucket; logging it to itself would loop.",
        )

        abort_uploads = s3.LifecycleRule(
            id="abort-incomplete-uploads", abort_incomplete_multipart_upload_after=Duration.days(7)
        )
        # Versioned: an overwritten or deleted raw object can be restored for RAW_VERSIONS_KEPT; curated data
        # is derived from raw and rewritten by every clean run, so its old versions go sooner.
        self.raw_bucket = self._data_bucket(
            config,
            "raw",
            removal,
            lifecycle=[abort_uploads, _expire_noncurrent(RAW_VERSIONS_KEPT)],
        )
        self.curated_bucket = self._data_bucket(
            config,
            "curated",
            removal,
            lifecycle=[
                abort_uploads,
                _expire_prefix("expire-tmp", "tmp/", TMP_EXPIRY),
                _expire_prefix("expire-quarantine", "quarantine/", Duration.days(90)),
                _expire_noncurrent(CURATED_VERSIONS_KEPT),
            ],
        )
        self.artifacts_bucket = self._data_bucket(
            config,
            "artifacts",
            removal,
            lifecycle=[
                abort_uploads,
                _expire_prefix("expire-checkpoints", "checkpoints/", CHECKPOINT_EXPIRY),
                _expire_prefix("expire-tmp", "tmp/", TMP_EXPIRY),
                _expire_noncurrent(ARTIFACT_VERSIONS_KEPT),
            ],
        )

        self.database = glue.Database(
            self,
            "Database",
            database_name=glue_database_name(config),
            description="mlpipe curated data lake: cleaned records",
        )
        self.database.apply_removal_policy(removal)

    def _data_bucket(
        self,
        config: MlpipeConfig,
        purpose: str,
        removal: RemovalPolicy,
        *,
        lifecycle: list[s3.LifecycleRule],
    ) -> s3.Bucket:
        return s3.Bucket(
            self,
            f"{purpose.title()}Bucket",
            bucket_name=bucket_name(config, purpose),
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,  # every data bucket: what a run overwrites or deletes can be restored
            server_access_logs_bucket=self.logs_bucket,
            server_access_logs_prefix=f"s3/{purpose}/",
            lifecycle_rules=lifecycle,
            removal_policy=removal,
        )
