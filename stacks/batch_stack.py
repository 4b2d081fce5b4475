from __future__ import annotations

from typing import Any

from constructs import Construct

from mlpipe.config import MlpipeConfig
from mlpipe.workload import Workload
from stacks.base import MlpipeStack
from stacks.constructs.batch import BatchCompute
from stacks.constructs.common import encrypted_log_group
from stacks.constructs.network import Network
from stacks.constructs.storage import Storage, import_lake
from stacks.constructs.workload_code import StagedPackage, WorkloadCode
from stacks.constructs.workload_jobs import WorkloadJobs
from stacks.defaults import removal_policy


class BatchStack(MlpipeStack):
    """GPU compute environments, job queues and job definitions for training and inference."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: MlpipeConfig,
        network: Network,
        storage: Storage,
        workload: Workload,
        code: StagedPackage,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        lake = import_lake(self, config, storage.key)
        self.log_group = encrypted_log_group(
            self,
            "JobLogs",
            key=storage.key,
            retention_days=config.log_retention_days,
            removal=removal_policy(config),
        )
        self.batch = BatchCompute(
            self,
            "Batch",
            config=config.batch,
            vpc=network.vpc,
            subnets=network.workload_subnets,
        )
        self.jobs = WorkloadJobs(
            self,
            "Jobs",
            config=config.batch,
            workload=workload,
            code=WorkloadCode(self, "WorkloadCode", package=code),
            image=self.batch.image,
            key=storage.key,
            curated_bucket=lake.curated_bucket,
            artifacts_bucket=lake.artifacts_bucket,
            log_group=self.log_group,
        )
        b, j = self.batch, self.jobs
        self.output("SpotFirstQueue", b.spot_first_queue.job_queue_arn, "Spot first, then On-Demand")
        self.output("OnDemandQueue", b.on_demand_queue.job_queue_arn, "On-Demand (multi-node jobs)")
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
        self.output("JobLogGroup", self.log_group.log_group_name, "Logs of every Batch job")
        self.output("Workload", workload.name, "The workload whose job definitions these are")
