from __future__ import annotations

from typing import Any

from constructs import Construct

from mlpipe.config import MlpipeConfig
from stacks.base import MlpipeStack
from stacks.constructs.handoff import publish
from stacks.constructs.storage import KEY_ARN, Storage


class StorageStack(MlpipeStack):
    """The KMS key, the raw/curated/artifacts/logs buckets and the Glue database."""

    def __init__(self, scope: Construct, construct_id: str, *, config: MlpipeConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.storage = Storage(self, "Storage", config=config)
        self.output("RawBucket", self.storage.raw_bucket.bucket_name, "Raw data (each workload's raw prefix)")
        self.output("CuratedBucket", self.storage.curated_bucket.bucket_name, "Curated lake and features")
        self.output(
            "ArtifactsBucket", self.storage.artifacts_bucket.bucket_name, "Models, metrics, checkpoints"
        )
        self.output("KeyArn", self.storage.key.key_arn, "KMS key of the data lake")
        publish(self, config, KEY_ARN, self.storage.key.key_arn, "the data lake's KMS key")
