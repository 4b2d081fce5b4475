from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from constructs import Construct

from mlpipe.config import MlpipeConfig
from stacks.base import MlpipeStack
from stacks.constructs.emr_certificates import days_to_expiry
from stacks.constructs.monitoring import Monitoring, WorkloadSection
from stacks.defaults import resource_name


class MonitoringStack(MlpipeStack):
    """The dashboard (a section per workload), the alarms on failed and timed-out executions, and the alarm on
    EMR's TLS certificates."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: MlpipeConfig,
        workloads: Sequence[WorkloadSection],
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            dashboard_name=resource_name(config),
            workloads=workloads,
            certificates=days_to_expiry(config.env),
        )
