"""Glue ETL: the clean job that turns a workload's raw records into its curated data."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import ArnFormat, RemovalPolicy, Stack
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from mlpipe.config import GLUE_VERSION, GlueConfig
from mlpipe.workload import Workload
from stacks.constructs.common import (
    S3_READ,
    S3_READ_WRITE_DELETE,
    allow,
    allow_key,
    allow_objects,
    content_name,
)
from stacks.constructs.workload_code import WorkloadCode, module_name
from stacks.defaults import GLUE_JOBS_DIR


def _workload_arguments(workload: Workload) -> dict[str, str]:
    """The driver's arguments that the workload's manifest decides (the run adds its locations)."""
    clean, raw = workload.clean, workload.raw
    if clean is None:
        return {}
    # How the raw records are written: mlpipe's driver and a whole script of the workload both get it.
    arguments = {"--format": raw.format}
    if raw.format == "csv":
        arguments.update({"--csv-header": str(raw.csv_header).lower(), "--csv-delimiter": raw.csv_delimiter})
    if clean.script:
        return arguments
    arguments.update(
        {"--workload-module": module_name(clean.module), "--dedupe-key": ",".join(clean.dedupe_key)}
    )
    if clean.order_by:
        arguments["--order-by"] = clean.order_by
    if clean.partition_column:
        arguments["--partition-column"] = clean.partition_column
    return arguments


class GlueEtl(Construct):
    """A Glue 5.1 PySpark job (L1: the L2 job grants itself wildcard S3 actions) with bookmarks, encrypted through a Glue security configuration.

    The job runs mlpipe's clean driver (glue_jobs/mlpipe_clean.py) with the workload's clean module from its
    code package (or the workload's own Glue script): it reads the workload's raw prefix, writes
    curated/<workload>/, quarantines rejected rows under quarantine/<workload>/ and writes an accounting report
    under reports/<workload>/; its role can do exactly that.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: GlueConfig,
        workload: Workload,
        code: WorkloadCode,
        key: kms.IKey,
        raw_bucket: s3.IBucket,
        curated_bucket: s3.IBucket,
        artifacts_bucket: s3.IBucket,
        wheels: Sequence[s3_assets.Asset] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)

        self.security_configuration = glue.SecurityConfiguration(
            self,
            "SecurityConfiguration",
            s3_encryption=glue.S3Encryption.kms(key),
            cloud_watch_encryption=glue.CloudWatchEncryption.kms(key),
            job_bookmarks_encryption=glue.JobBookmarksEncryption.client_side_kms(key),
            removal_policy=RemovalPolicy.DESTROY,  # settings, not data: a redeploy recreates it
        )
        # Named after its content: any change replaces a security configuration, under a new name.
        configuration = self.security_configuration.node.default_child
        assert isinstance(configuration, glue.CfnSecurityConfiguration)
        configuration.name = content_name(
            self, f"{stack.stack_name}-clean", configuration.encryption_configuration
        )

        clean = workload.clean
        if clean is None:
            raise ValueError(f"workload {workload.name} has no clean stage: it needs no Glue job")
        self.code = code
        script = workload.path(clean.script) if clean.script else GLUE_JOBS_DIR / "mlpipe_clean.py"
        self.script = s3_assets.Asset(self, "Script", path=str(script))
        self.role = iam.Role(
            self,
            "JobRole",
            assumed_by=iam.ServicePrincipal("glue.amazonaws.com"),
            description="mlpipe Glue clean job",
        )
        allow(self.role, S3_READ, [self.script.bucket.arn_for_objects(self.script.s3_object_key)])
        self.code.grant_read(self.role)
        if wheels:
            allow(self.role, S3_READ, [w.bucket.arn_for_objects(w.s3_object_key) for w in wheels])
        allow_objects(self.role, raw_bucket, [workload.raw_prefix], S3_READ)
        # Partition overwrite replaces curated files, staged under the output prefix (.spark-staging-*).
        prefixes = [f"{kind}/{workload.name}/" for kind in ("curated", "quarantine", "reports")]
        allow_objects(self.role, curated_bucket, prefixes, S3_READ_WRITE_DELETE)
        temp_dir = f"tmp/glue/{workload.name}/"
        allow_objects(self.role, artifacts_bucket, [temp_dir], S3_READ_WRITE_DELETE)
        allow_key(self.role, key)
        glue_logs = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name="/aws-glue/jobs/*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        allow(
            self.role,
            ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:AssociateKmsKey"],
            [glue_logs],
            sid="GlueJobLogs",
            reason="Glue names its job log groups at run time under /aws-glue/jobs/ (per security configuration).",
        )
        allow(
            self.role,
            ["cloudwatch:PutMetricData"],
            ["*"],
            sid="GlueJobMetrics",
            conditions={"StringEquals": {"cloudwatch:namespace": "Glue"}},
            reason="PutMetricData has no resource-level permissions; the namespace condition scopes it to Glue.",
        )

        self.job = glue.CfnJob(
            self,
            "CleanJob",
            command=glue.CfnJob.JobCommandProperty(
                name="glueetl", python_version="3", script_location=self.script.s3_object_url
            ),
            role=self.role.role_arn,
            glue_version=GLUE_VERSION,
            worker_type=config.worker_type,
            number_of_workers=config.number_of_workers,
            security_configuration=self.security_configuration.security_configuration_name,
            timeout=config.timeout_minutes,
            max_retries=0,  # the state machine retries transient failures with backoff
            execution_property=glue.CfnJob.ExecutionPropertyProperty(max_concurrent_runs=1),
            default_arguments={
                **_workload_arguments(workload),
                # the workload's code, then its wheels (as zips): all on the script's Python path
                "--extra-py-files": ",".join(
                    [self.code.asset.s3_object_url, *(w.s3_object_url for w in wheels)]
                ),
                "--job-language": "python",
                "--job-bookmark-option": "job-bookmark-enable",
                "--TempDir": artifacts_bucket.s3_url_for_object(temp_dir),
                "--enable-metrics": "true",
                "--enable-continuous-cloudwatch-log": "true",
                "--enable-job-insights": "true",
            },
            description=f"mlpipe: clean {workload.name}'s raw records, quarantine bad rows, write curated Parquet",
        )
        self.job_name = self.job.ref
