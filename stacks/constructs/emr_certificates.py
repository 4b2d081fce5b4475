"""The certificates of EMR's in-transit encryption, part of the deployment: a function (lambdas/certificates/)
that a custom resource calls at deploy time and a rule calls every 6 hours, to make, store and renew them."""

from __future__ import annotations

from aws_cdk import CustomResource, Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.constructs.common import (
    allow,
    allow_key,
    drop_redundant_dependency,
    encrypted_log_group,
    lambda_code,
    lambda_layer,
)
from stacks.defaults import (
    CERTIFICATES_DAYS,
    CERTIFICATES_METRIC,
    CERTIFICATES_NAMESPACE,
    LAMBDA_ARCHITECTURE,
    LAMBDA_RUNTIME,
)


def days_to_expiry(env: str) -> cw.Metric:
    """The days left on the certificates of environment `env`, reported once a day (its alarm reads this)."""
    return cw.Metric(
        namespace=CERTIFICATES_NAMESPACE,
        metric_name=CERTIFICATES_METRIC,
        dimensions_map={"Environment": env},
        statistic="Minimum",
        period=Duration.days(1),
    )


class EmrCertificates(Construct):
    """Makes the certificates zip at `key` of `bucket` when the stack deploys (a custom resource), renews it
    before it ends (a rule, every 6 hours) and reports the days left; the object is encrypted with `kms_key`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env: str,
        bucket: s3.IBucket,
        key: str,
        kms_key: kms.IKey,
        log_retention_days: int,
        removal: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        log_group = encrypted_log_group(
            self, "Logs", key=kms_key, retention_days=log_retention_days, removal=removal
        )
        role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="mlpipe EMR TLS certificates",
        )
        allow(role, ["logs:CreateLogStream", "logs:PutLogEvents"], [log_group.log_group_arn])
        allow(
            role,
            ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"],
            [bucket.arn_for_objects(key)],
        )
        # Listing, with this key as the prefix only: whether the object exists, and its versions to delete.
        allow(
            role,
            ["s3:ListBucket", "s3:ListBucketVersions"],
            [bucket.bucket_arn],
            conditions={"StringEquals": {"s3:prefix": key}},
        )
        allow_key(role, kms_key)
        allow(
            role,
            ["cloudwatch:PutMetricData"],
            ["*"],
            conditions={"StringEquals": {"cloudwatch:namespace": CERTIFICATES_NAMESPACE}},
            reason="PutMetricData has no resource-level permissions; the namespace condition scopes it.",
        )
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=LAMBDA_RUNTIME,
            architecture=LAMBDA_ARCHITECTURE,
            handler="certificates.handler.handler",
            code=lambda_code(),
            layers=[lambda_layer(self, "RuntimeDependencies")],
            role=role,
            log_group=log_group,
            timeout=Duration.minutes(2),
            memory_size=256,
            environment={
                "CERTIFICATES_BUCKET": bucket.bucket_name,
                "CERTIFICATES_KEY": key,
                "KMS_KEY_ARN": kms_key.key_arn,
                "CERTIFICATE_DAYS": str(CERTIFICATES_DAYS),
                "METRIC_NAMESPACE": CERTIFICATES_NAMESPACE,
                "MLPIPE_ENV": env,
            },
            environment_encryption=kms_key,
            description="mlpipe: make and renew EMR's TLS certificates",
        )
        drop_redundant_dependency(self.function, role)
        # Deploy time: CloudFormation calls the function (with the deployer's rights) and waits for its answer.
        self.resource = CustomResource(
            self,
            "Certificates",
            service_token=self.function.function_arn,
            resource_type="Custom::EmrCertificates",
            properties={"Object": key},
        )
        # Four reports a day: one missed run does not leave the alarm's day without a figure.
        events.Rule(
            self,
            "Daily",
            schedule=events.Schedule.rate(Duration.hours(6)),
            targets=[targets.LambdaFunction(self.function, retry_attempts=2)],
            description="mlpipe: renew EMR's TLS certificates before they end; report the days left",
        )
