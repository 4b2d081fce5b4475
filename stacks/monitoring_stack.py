from __future__ import annotations

from typing import Any

from constructs import Construct

from mlpipe.config import MlpipeConfig
from stacks.base import MlpipeStack
from stacks.constructs.glue_etl import GlueEtl
from stacks.constructs.monitoring import Monitoring
from stacks.constructs.pipeline import Pipeline
from stacks.defaults import resource_name


class MonitoringStack(MlpipeStack):
    """The pipeline dashboard and the alarms on failed and timed-out executions."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: MlpipeConfig,
        pipeline: Pipeline,
        glue_etl: GlueEtl,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            dashboard_name=resource_name(config),
            state_machine=pipeline.state_machine,
            functions=[pipeline.preprocessing, pipeline.training, pipeline.inference],
            glue_job_name=glue_etl.job_name,
            topic=pipeline.topic,
        )
