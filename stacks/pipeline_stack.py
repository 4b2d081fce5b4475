from __future__ import annotations

from typing import Any

from constructs import Construct

from mlpipe.config import MlpipeConfig
from mlpipe.workload import Workload
from stacks.base import MlpipeStack
from stacks.constructs.batch import BatchCompute
from stacks.constructs.emr import Emr
from stacks.constructs.glue_etl import GlueEtl
from stacks.constructs.pipeline import Pipeline
from stacks.constructs.storage import Storage, import_lake
from stacks.constructs.workload_jobs import WorkloadJobs
from stacks.defaults import removal_policy


class PipelineStack(MlpipeStack):
    """The Lambdas, the failure topic and the state machine that runs Glue, EMR and Batch."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: MlpipeConfig,
        storage: Storage,
        glue_etl: GlueEtl,
        emr: Emr,
        batch: BatchCompute,
        jobs: WorkloadJobs,
        workload: Workload,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.pipeline = Pipeline(
            self,
            "Pipeline",
            config=config,
            lake=import_lake(self, config, storage.key),
            glue_etl=glue_etl,
            emr_=emr,
            batch_=batch,
            jobs=jobs,
            workload=workload,
            removal=removal_policy(config),
        )
        self.output("StateMachineArn", self.pipeline.state_machine.state_machine_arn, "The pipeline")
        self.output("FailureTopicArn", self.pipeline.topic.topic_arn, "Failure notifications and alarms")
        self.output(
            "ModelPackageGroup",
            self.pipeline.model_package_group.model_package_group_name,
            "Registered models",
        )
