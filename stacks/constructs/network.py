"""Network: a two-AZ VPC in one of two cost profiles, an S3 gateway endpoint, flow logs."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Annotations, Stack, Tags
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_s3 as s3
from constructs import Construct

from mlpipe.config import MlpipeConfig, NetworkConfig
from stacks.constructs.handoff import publish, receive
from stacks.defaults import EMR_MANAGED_POLICY_TAG

# Interface endpoints that Batch (ECS agent, ECR pulls, logs), EMR, Glue and Step Functions' targets need
# when private subnets have no NAT gateway (the `prod` profile with `prod_egress: endpoints`).
_INTERFACE_ENDPOINTS = {
    "EcrApi": ec2.InterfaceVpcEndpointAwsService.ECR,
    "EcrDocker": ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
    "Ecs": ec2.InterfaceVpcEndpointAwsService.ECS,
    "EcsAgent": ec2.InterfaceVpcEndpointAwsService.ECS_AGENT,
    "EcsTelemetry": ec2.InterfaceVpcEndpointAwsService.ECS_TELEMETRY,
    "Logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    "Sts": ec2.InterfaceVpcEndpointAwsService.STS,
    "Kms": ec2.InterfaceVpcEndpointAwsService.KMS,
    "Emr": ec2.InterfaceVpcEndpointAwsService.EMR,
    "Glue": ec2.InterfaceVpcEndpointAwsService.GLUE,
}


class Network(Construct):
    """The VPC that EMR and Batch run in.

    dev: public subnets only, no NAT gateway, no interface endpoint, security groups without inbound rules
    from outside the group: nothing costs money while idle. prod: private subnets; egress through NAT
    gateways or through interface endpoints (see docs/deployment.md for the monthly cost of each).
    The AZs come from Fn::GetAZs in the template (the stack overrides availability_zones), never a lookup.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, config: NetworkConfig, logs_bucket: s3.IBucket
    ) -> None:
        super().__init__(scope, construct_id)
        self.profile = config.profile
        if config.profile == "dev":
            subnets = [
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=20)
            ]
            nat_gateways = 0
        elif config.prod_egress == "nat":
            subnets = [
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(
                    name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=20
                ),
            ]
            nat_gateways = config.nat_gateways
        else:
            subnets = [
                ec2.SubnetConfiguration(
                    name="private", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=20
                )
            ]
            nat_gateways = 0

        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(config.cidr),
            max_azs=2,
            nat_gateways=nat_gateways,
            subnet_configuration=subnets,
            # Restricting the default security group takes a custom-resource Lambda; nothing uses it.
            restrict_default_security_group=False,
            flow_logs={
                "all-traffic": ec2.FlowLogOptions(
                    destination=ec2.FlowLogDestination.to_s3(logs_bucket, "vpc-flow-logs/"),
                    traffic_type=ec2.FlowLogTrafficType.ALL,
                )
            },
        )
        workload_subnets = self.vpc.select_subnets(
            subnet_type=self.workload_subnets.subnet_type,
            subnet_group_name=self.workload_subnets.subnet_group_name,
        ).subnets
        # AWS's scoped EMR service policy (v2) launches instances only into subnets tagged for it.
        for subnet in workload_subnets:
            Tags.of(subnet).add(*EMR_MANAGED_POLICY_TAG)
        self.workload_subnet_ids = [s.subnet_id for s in workload_subnets]  # in availability-zone order
        self.vpc.add_gateway_endpoint(
            "S3", service=ec2.GatewayVpcEndpointAwsService.S3, subnets=[self.workload_subnets]
        )
        if config.profile == "prod" and config.prod_egress == "endpoints":
            endpoint_sg = ec2.SecurityGroup(
                self,
                "EndpointSecurityGroup",
                vpc=self.vpc,
                allow_all_outbound=False,
                description="mlpipe interface endpoints: HTTPS from the VPC",
            )
            endpoint_sg.add_ingress_rule(ec2.Peer.ipv4(config.cidr), ec2.Port.tcp(443), "HTTPS from the VPC")
            for name, service in _INTERFACE_ENDPOINTS.items():
                self.vpc.add_interface_endpoint(
                    name,
                    service=service,
                    subnets=self.workload_subnets,
                    security_groups=[endpoint_sg],
                    private_dns_enabled=True,
                    open=False,  # the group above already admits HTTPS from the VPC CIDR, stated literally
                )

    @property
    def workload_subnets(self) -> ec2.SubnetSelection:
        """Where EMR and Batch instances run: public subnets in dev, private ones in prod."""
        if self.profile == "dev":
            return ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC)
        return ec2.SubnetSelection(subnet_group_name="private")


@dataclass(frozen=True)
class WorkloadNetwork:
    """The VPC and the subnets that EMR and Batch run in, as another stack sees them."""

    vpc: ec2.IVpc
    subnets: list[ec2.ISubnet]

    @property
    def subnet_ids(self) -> list[str]:
        return [s.subnet_id for s in self.subnets]


VPC_ID = "network/vpc-id"  # handoff paths (handoff.py)


def workload_subnet_path(number: int) -> str:
    """The handoff path of the workload subnet in the `number`th availability zone (from 1)."""
    return f"network/workload-subnet-{number}"


def publish_network(scope: Construct, config: MlpipeConfig, network: Network) -> None:
    publish(scope, config, VPC_ID, network.vpc.vpc_id, "the VPC")
    for i, subnet_id in enumerate(network.workload_subnet_ids):
        publish(scope, config, workload_subnet_path(i + 1), subnet_id, "a subnet of EMR and Batch")


def import_network(scope: Construct, config: MlpipeConfig) -> WorkloadNetwork:
    """The network that `publish_network` handed over, in `scope`'s stack: one subnet per availability zone."""
    zones = Stack.of(scope).availability_zones
    vpc = ec2.Vpc.from_vpc_attributes(
        scope, "Vpc", vpc_id=receive(scope, config, VPC_ID), availability_zones=zones
    )
    subnets = [
        ec2.Subnet.from_subnet_attributes(
            scope,
            f"WorkloadSubnet{i + 1}",
            subnet_id=receive(scope, config, workload_subnet_path(i + 1)),
            availability_zone=zone,
        )
        for i, zone in enumerate(zones)
    ]
    for subnet in subnets:  # the route tables stay the Network stack's concern; nothing here reads them
        Annotations.of(subnet).acknowledge_warning("@aws-cdk/aws-ec2:noSubnetRouteTableId")
    return WorkloadNetwork(vpc=vpc, subnets=subnets)
