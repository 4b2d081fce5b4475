from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from constructs import Construct

from mlpipe.config import MlpipeConfig
from mlpipe.workload import Workload
from stacks.base import MlpipeStack
from stacks.constructs.emr_certificates import days_to_expiry
from stacks.constructs.monitoring import Monitoring, import_section
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
        workloads: Sequence[Workload],
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            dashboard_name=resource_name(config),
            workloads=[
                import_section(self, config, w.name, has_clean_stage=w.clean is not None) for w in workloads
            ],
            certificates=days_to_expiry(config.env),
        )
