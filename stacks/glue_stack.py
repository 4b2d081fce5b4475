from __future__ import annotations

from typing import Any

from constructs import Construct

from mlpipe.config import MlpipeConfig
from mlpipe.workload import Workload
from stacks.base import MlpipeStack
from stacks.constructs.glue_etl import GlueEtl
from stacks.constructs.storage import Storage, import_lake
from stacks.constructs.workload_code import StagedPackage


class GlueStack(MlpipeStack):
    """The Glue clean job, its security configuration and the curated catalog table."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: MlpipeConfig,
        storage: Storage,
        workload: Workload,
        code: StagedPackage,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        lake = import_lake(self, config, storage.key)
        self.glue = GlueEtl(
            self,
            "Glue",
            config=config.glue,
            workload=workload,
            code=code,
            key=storage.key,
            raw_bucket=lake.raw_bucket,
            curated_bucket=lake.curated_bucket,
            artifacts_bucket=lake.artifacts_bucket,
        )
        self.output("CleanJobName", self.glue.job_name, "Glue job that cleans the workload's raw records")
