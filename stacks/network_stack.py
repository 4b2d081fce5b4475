from __future__ import annotations

from typing import Any

from aws_cdk import aws_s3 as s3
from constructs import Construct

from mlpipe.config import MlpipeConfig
from stacks.base import MlpipeStack
from stacks.constructs.network import Network, publish_network
from stacks.defaults import bucket_name


class NetworkStack(MlpipeStack):
    """The VPC (dev or prod profile), its S3 gateway endpoint and flow logs."""

    def __init__(self, scope: Construct, construct_id: str, *, config: MlpipeConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        logs_bucket = s3.Bucket.from_bucket_name(self, "LogsBucket", bucket_name(config, "logs"))
        self.network = Network(self, "Network", config=config.network, logs_bucket=logs_bucket)
        publish_network(self, config, self.network)
