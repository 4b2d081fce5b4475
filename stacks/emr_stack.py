from __future__ import annotations

from typing import Any

from constructs import Construct

from mlpipe.config import MlpipeConfig
from stacks.base import MlpipeStack
from stacks.constructs.emr import CLUSTER_ID, TLS_CERTIFICATES_KEY, Emr
from stacks.constructs.emr_certificates import EmrCertificates
from stacks.constructs.handoff import publish
from stacks.constructs.network import import_network
from stacks.constructs.storage import import_lake
from stacks.defaults import removal_policy, resource_name


class EmrStack(MlpipeStack):
    """EMR on EC2 for every workload: security configuration and its TLS certificates, service role, security
    groups; the cluster when persistent."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: MlpipeConfig,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        lake = import_lake(self, config)
        # Only the persistent cluster runs in this stack; transient ones are created by each workload's runs.
        network = import_network(self, config) if config.emr.mode == "persistent" else None
        self.emr = Emr(
            self,
            "Emr",
            config=config.emr,
            name_prefix=resource_name(config),
            role_prefix=resource_name(config, config.region),
            cluster_name=(
                resource_name(config, f"g{config.emr.cluster_generation}")
                if config.emr.mode == "persistent"
                else resource_name(config)
            ),
            network=network,
            private=config.network.profile == "prod",
            key=lake.key,
            artifacts_bucket=lake.artifacts_bucket,
            logs_bucket=lake.logs_bucket,
        )
        # In-transit encryption reads its certificates at every cluster's bootstrap: they exist before the
        # security configuration that names them, and are renewed before they end.
        self.certificates = EmrCertificates(
            self,
            "TlsCertificates",
            env=config.env,
            bucket=lake.artifacts_bucket,
            key=TLS_CERTIFICATES_KEY,
            kms_key=lake.key,
            log_retention_days=config.log_retention_days,
            removal=removal_policy(config),
        )
        self.emr.security_configuration.add_resource_dependency(self.certificates.resource.node.default_child)  # type: ignore[arg-type]
        if self.emr.cluster is not None:
            self.output("ClusterId", self.emr.cluster.ref, "The persistent EMR cluster")
            publish(self, config, CLUSTER_ID, self.emr.cluster.ref, "the persistent EMR cluster")
