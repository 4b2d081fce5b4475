from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from constructs import Construct

from mlpipe.config import MlpipeConfig
from mlpipe.workload import Workload, share_identifier
from stacks.base import MlpipeStack
from stacks.constructs.batch import JOB_LOG_GROUP, BatchCompute, publish_queues
from stacks.constructs.common import encrypted_log_group
from stacks.constructs.handoff import publish
from stacks.constructs.network import import_network
from stacks.constructs.storage import import_lake
from stacks.defaults import removal_policy


class BatchStack(MlpipeStack):
    """GPU compute environments, the fair-share job queues every workload submits to, the image, the job logs."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: MlpipeConfig,
        workloads: Sequence[Workload],
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        network = import_network(self, config)
        self.log_group = encrypted_log_group(
            self,
            "JobLogs",
            key=import_lake(self, config).key,
            retention_days=config.log_retention_days,
            removal=removal_policy(config),
        )
        self.batch = BatchCompute(
            self,
            "Batch",
            config=config.batch,
            vpc=network.vpc,
            subnets=network.subnets,
            shares=[share_identifier(w.name) for w in workloads],
        )
        b = self.batch
        self.output("SpotFirstQueue", b.spot_first_queue.job_queue_arn, "Spot first, then On-Demand")
        self.output("OnDemandQueue", b.on_demand_queue.job_queue_arn, "On-Demand (multi-node jobs)")
        self.output("JobLogGroup", self.log_group.log_group_name, "Logs of every Batch job")
        publish_queues(self, config, b)
        publish(
            self, config, JOB_LOG_GROUP, self.log_group.log_group_name, "the log group of every Batch job"
        )
        self.output("Workloads", ",".join(w.name for w in workloads), "The workloads that share these queues")
