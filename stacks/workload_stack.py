from __future__ import annotations

from typing import Any

from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from mlpipe.config import MlpipeConfig, workload_vcpu_limit
from mlpipe.workload import Workload, share_identifier
from stacks.base import MlpipeStack
from stacks.constructs.batch import JOB_LOG_GROUP, BatchCompute, import_queues
from stacks.constructs.emr import CLUSTER_ID, Emr, EmrSteps
from stacks.constructs.glue_etl import GlueEtl
from stacks.constructs.handoff import receive
from stacks.constructs.monitoring import WorkloadSection, publish_section
from stacks.constructs.network import import_network
from stacks.constructs.pipeline import Pipeline
from stacks.constructs.storage import import_lake
from stacks.constructs.workload_code import StagedPackage, WorkloadCode, stage_wheel_as_zip
from stacks.constructs.workload_image import WorkloadImage
from stacks.constructs.workload_jobs import WorkloadJobs
from stacks.defaults import removal_policy, resource_name


class WorkloadStack(MlpipeStack):
    """One workload's pipeline on the shared platform: its code package, Glue job, EMR step roles, Batch job
    definitions and vCPU cap, Lambdas and state machine. Adding or removing a workload touches only its stack
    (and the shared fair-share policy and dashboard)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: MlpipeConfig,
        workload: Workload,
        package: StagedPackage,
        emr_: Emr,
        batch_: BatchCompute,
        **kwargs: Any,
    ) -> None:
        """`emr_` and `batch_` give what is known at synth (names, cluster settings, the image asset); values that
        their stacks' resources get at deploy arrive as handoffs (handoff.py)."""
        super().__init__(scope, construct_id, **kwargs)
        lake = import_lake(self, config)
        job_log_group = logs.LogGroup.from_log_group_name(
            self, "JobLogs", receive(self, config, JOB_LOG_GROUP)
        )
        code = WorkloadCode(self, "WorkloadCode", package=package)
        # The workload's pure-Python wheels for its Spark code, as zips on Glue's and EMR's Python path.
        spark_wheels = [
            s3_assets.Asset(self, f"SparkWheel{i}", path=str(stage_wheel_as_zip(workload.path(wheel))))
            for i, wheel in enumerate(workload.dependencies.spark)
        ]
        image, image_hash = batch_.image, batch_.image_asset.asset_hash
        if workload.train.dockerfile:  # the workload's own image, built on mlpipe's at deploy
            own = WorkloadImage(self, "Image", workload=workload, base_image=batch_.base_image)
            image, image_hash = own.image, own.asset.asset_hash
        self.jobs = WorkloadJobs(
            self,
            "Jobs",
            config=config.batch,
            workload=workload,
            code=code,
            image=image,
            image_hash=image_hash,
            key=lake.key,
            raw_bucket=lake.raw_bucket,
            curated_bucket=lake.curated_bucket,
            artifacts_bucket=lake.artifacts_bucket,
            log_group=job_log_group,
            vcpu_limit=workload_vcpu_limit(config.batch, workload.name),
            vcpu_resource_name=resource_name(config, f"{workload.name}-vcpus"),
        )
        # Each Spark stage exists only when the workload has it.
        self.glue = (
            GlueEtl(
                self,
                "Glue",
                config=config.glue,
                workload=workload,
                code=code,
                key=lake.key,
                raw_bucket=lake.raw_bucket,
                curated_bucket=lake.curated_bucket,
                artifacts_bucket=lake.artifacts_bucket,
                wheels=spark_wheels,
            )
            if workload.clean is not None
            else None
        )
        self.steps = (
            EmrSteps(
                self,
                "Steps",
                emr_=emr_,
                workload=workload,
                code=code,
                # A transient cluster runs in this stack's security groups; the persistent one has its own.
                network=None if emr_.persistent else import_network(self, config),
                lake=lake,
                wheels=spark_wheels,
                cluster_id=receive(self, config, CLUSTER_ID) if emr_.persistent else None,
            )
            if workload.features is not None
            else None
        )
        self.pipeline = Pipeline(
            self,
            "Pipeline",
            config=config,
            lake=lake,
            code=code,
            glue_etl=self.glue,
            steps=self.steps,
            queues=import_queues(self, config),
            jobs=self.jobs,
            workload=workload,
            removal=removal_policy(config),
        )
        p, j = self.pipeline, self.jobs
        publish_section(
            self,
            config,
            WorkloadSection(
                name=workload.name,
                state_machine=p.state_machine,
                functions=[p.preprocessing, p.training, p.inference],
                glue_job_name=self.glue.job_name if self.glue is not None else None,
                topic=p.topic,
            ),
        )
        self.output("Workload", workload.name, "The workload this pipeline runs")
        self.output("JobInput", j.input_uri, "The prefix its Batch jobs read")
        self.output("ShareIdentifier", share_identifier(workload.name), "Its share of the Batch queues")
        self.output("StateMachineArn", p.state_machine.state_machine_arn, "The pipeline")
        self.output("FailureTopicArn", p.topic.topic_arn, "Failure notifications and alarms")
        self.output("ModelPackageGroup", p.model_package_group.model_package_group_name, "Registered models")
        if self.glue is not None:
            self.output("CleanJobName", self.glue.job_name, "Glue job that cleans the workload's raw records")
        self.output(
            "TrainingJobDefinition", j.training_job_definition.job_definition_arn, "Single-node training"
        )
        self.output("MultiNodeJobDefinition", j.multinode_job_definition.job_definition_arn, "Multi-node DDP")
        self.output(
            "EvaluationJobDefinition",
            j.evaluation_job_definition.job_definition_arn,
            "The quality gate's figure",
        )
        self.output(
            "InferenceJobDefinition", j.inference_job_definition.job_definition_arn, "Batch inference"
        )
