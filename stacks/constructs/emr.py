"""EMR on EC2: the shared security configuration and service role, each workload's step roles, and the
cluster spec both modes share.

transient (default): each workload's state machine creates a cluster from its `cluster_spec` for each run,
runs the Spark steps and terminates it, so nothing runs while idle. persistent: one AWS::EMR::Cluster in the
Emr stack, from the same spec, with an auto-termination policy; each workload's state machine adds steps to it
that run as the workload's runtime role.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aws_cdk import Duration, Size, Stack, Tags
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_emr as emr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from mlpipe.config import ConfigError, EmrConfig
from mlpipe.workload import Workload
from stacks.constructs.common import (
    S3_READ,
    S3_READ_WRITE_DELETE,
    acknowledge,
    allow,
    allow_key,
    allow_objects,
    content_name,
)
from stacks.constructs.network import WorkloadNetwork
from stacks.constructs.storage import DataLake
from stacks.constructs.workload_code import WorkloadCode, feature_driver_arguments
from stacks.defaults import EMR_CREATE_CLUSTER_TIMEOUT, EMR_MANAGED_POLICY_TAG, EMR_STEPS_DIR

# Where the PEM certificates for in-transit encryption lie (the Emr stack's EmrCertificates makes and renews them).
TLS_CERTIFICATES_KEY = "emr/tls/certificates.zip"
_SPOT_TIMEOUT_MINUTES = 10


@dataclass(frozen=True)
class Fleet:
    role: str  # MASTER, CORE or TASK
    instance_types: tuple[str, ...]
    on_demand: int
    spot: int


CLUSTER_ID = "emr/cluster-id"  # the handoff path of the persistent cluster's id


@dataclass(frozen=True)
class ClusterSpec:
    """Everything a cluster of either mode is made from (rendered for CloudFormation or Step Functions)."""

    name: str
    release_label: str
    fleets: tuple[Fleet, ...]
    subnet_ids: list[str]
    primary_security_group: str
    core_security_group: str
    service_access_security_group: str | None
    log_uri: str
    security_configuration: str
    service_role: iam.IRole
    instance_role: iam.IRole
    instance_profile_name: str
    ebs_volume_gib: int
    max_capacity: int
    idle_timeout: Duration

    # Managed scaling's limits count core and task nodes only, never the primary node.
    @property
    def min_capacity(self) -> int:
        return sum(f.on_demand + f.spot for f in self.fleets if f.role != "MASTER")

    @property
    def on_demand_capacity(self) -> int:
        """On-Demand stays at the core fleet: every scale-out beyond it is Spot task capacity."""
        return self.core_capacity

    @property
    def core_capacity(self) -> int:
        return next(f.on_demand + f.spot for f in self.fleets if f.role == "CORE")


class Emr(Construct):
    """What every workload's Spark steps share: the security configuration, the service role, and in persistent
    mode the cluster (with its security groups), whose steps each run as their workload's runtime role."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EmrConfig,
        name_prefix: str,
        role_prefix: str,
        cluster_name: str,
        network: WorkloadNetwork | None,
        private: bool,
        key: kms.IKey,
        artifacts_bucket: s3.IBucket,
        logs_bucket: s3.IBucket,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.config = config
        self.persistent = config.mode == "persistent"
        self.logs_bucket = logs_bucket
        self.cluster_name = cluster_name

        def settings(key_arn: str, certificates: str) -> dict[str, Any]:
            encryption = {
                "EncryptionConfiguration": {
                    "EnableAtRestEncryption": True,
                    "EnableInTransitEncryption": True,
                    "AtRestEncryptionConfiguration": {
                        "S3EncryptionConfiguration": {"EncryptionMode": "SSE-KMS", "AwsKmsKey": key_arn},
                        "LocalDiskEncryptionConfiguration": {
                            "EncryptionKeyProviderType": "AwsKms",
                            "AwsKmsKey": key_arn,
                            "EnableEbsEncryption": True,
                        },
                    },
                    "InTransitEncryptionConfiguration": {
                        "TLSCertificateConfiguration": {
                            "CertificateProviderType": "PEM",
                            "S3Object": certificates,
                        }
                    },
                }
            }
            if not self.persistent:  # a transient cluster runs one workload, as that workload's instance role
                return encryption
            # The shared cluster runs each workload's steps as that workload's runtime role (ExecutionRoleArn).
            authorization = {
                "AuthorizationConfiguration": {
                    "IAMConfiguration": {
                        "EnableApplicationScopedIAMRole": True,
                        "ApplicationScopedIAMRoleConfiguration": {"PropagateSourceIdentity": True},
                    }
                }
            }
            return {**encryption, **authorization}

        # Named (clusters and cdk-nag find it by name) after its content, the key and certificates it names
        # included: a change makes a new configuration, which CloudFormation creates before deleting the old.
        # The key arrives as a handoff parameter, which stands for it: an update never replaces a KMS key
        # (CloudFormation refuses changes to its KeySpec, KeyUsage, Origin and MultiRegion).
        content = settings(key.key_arn, artifacts_bucket.s3_url_for_object(TLS_CERTIFICATES_KEY))
        self.security_configuration_name = content_name(self, name_prefix, content)
        self.security_configuration = emr.CfnSecurityConfiguration(
            self,
            "SecurityConfiguration",
            name=self.security_configuration_name,
            security_configuration=content,
        )

        # Service role: AWS's scoped managed policy v2 acts only on resources tagged for EMR.
        # Named, so that each workload's stack refers to it by a name it knows (not a value of this stack); the
        # region is in the name because IAM names are global to the account.
        self.service_role_name = iam_role_name(role_prefix, "emr-service")
        self.service_role = iam.Role(
            self,
            "ServiceRole",
            role_name=self.service_role_name,
            assumed_by=iam.ServicePrincipal(
                "elasticmapreduce.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            ),
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AmazonEMRServicePolicy_v2")
            ],
            description="mlpipe EMR service role",
        )
        acknowledge(
            self.service_role,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonEMRServicePolicy_v2]",
            "AWS's least-privilege EMR service policy: it only touches resources tagged "
            "for-use-with-amazon-emr-managed-policies=true, which mlpipe sets on its clusters.",
        )
        # EBS encryption with the project key: EMR's service role launches instances with encrypted volumes
        # (EC2 and EBS act on its behalf through grants, which only AWS resources may receive).
        allow(
            self.service_role,
            ["kms:DescribeKey", "kms:Decrypt", "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncryptFrom",
             "kms:ReEncryptTo"],
            [key.key_arn],
        )  # fmt: skip
        allow(
            self.service_role, ["kms:CreateGrant"], [key.key_arn],
            conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
        )  # fmt: skip

        self.private = private

        self.cluster: emr.CfnCluster | None = None
        self.instance_role: iam.Role | None = None
        self.instance_role_name = ""
        if self.persistent:
            # The shared cluster's own role writes its logs and reads the TLS certificates; data access is each
            # step's runtime role's (EmrSteps).
            self.instance_role_name = iam_role_name(role_prefix, "emr-cluster")
            self.instance_role = instance_role(self, "InstanceRole", key=key, artifacts_bucket=artifacts_bucket,
                                               logs_bucket=logs_bucket, description="mlpipe EMR shared cluster",
                                               role_name=self.instance_role_name)  # fmt: skip
            profile = instance_profile(self, "InstanceProfile", self.instance_role)
            allow_pass_role(self.service_role, self.instance_role)
            assert network is not None, "the persistent cluster runs in the workload network"
            groups = security_groups(self, network.vpc, private=private)
            spec = self.cluster_spec(cluster_name, self.instance_role, groups, network.subnet_ids)
            self.cluster = persistent_cluster(self, "Cluster", spec)
            self.cluster.add_resource_dependency(profile)
            self.cluster.add_resource_dependency(self.security_configuration)  # referenced by name only
            nag_bug = (
                "cdk-nag 3.0.2 looks for EnableAtRestEncryption/EnableInTransitEncryption at the top of the "
                "security configuration, but EMR nests them under EncryptionConfiguration, where this "
                "cluster's configuration enables them (KMS local disks and EBS, PEM TLS); "
                "tests/stacks/test_infrastructure.py asserts it."
            )
            acknowledge(self.cluster, "AwsSolutions-EMR4", nag_bug)
            acknowledge(self.cluster, "AwsSolutions-EMR5", nag_bug)
            acknowledge(
                self.cluster,
                "AwsSolutions-EMR6",
                "No SSH key pair and no Kerberos: nobody logs in to the nodes; work arrives as EMR steps "
                "through the API (IAM-authenticated), and the security groups admit no outside traffic.",
            )

    def cluster_spec(
        self, name: str, role: iam.IRole, groups: SecurityGroups, subnet_ids: Sequence[str]
    ) -> ClusterSpec:
        """A cluster of this configuration whose nodes run as `role` (instance profile of the same name) in
        `groups`, in one of `subnet_ids`."""
        config = self.config
        return ClusterSpec(
            name=name,
            release_label=config.release_label,
            fleets=(
                Fleet("MASTER", config.primary_instance_types, on_demand=1, spot=0),
                Fleet("CORE", config.core_instance_types, on_demand=config.core_capacity, spot=0),
                Fleet("TASK", config.task_instance_types, on_demand=0, spot=config.task_spot_capacity),
            ),
            subnet_ids=list(subnet_ids),
            primary_security_group=groups.primary.security_group_id,
            core_security_group=groups.core.security_group_id,
            service_access_security_group=(
                groups.service_access.security_group_id if groups.service_access else None
            ),
            log_uri=self.logs_bucket.s3_url_for_object("emr/"),
            security_configuration=self.security_configuration_name,
            service_role=self.service_role,
            instance_role=role,
            instance_profile_name=role.role_name,
            ebs_volume_gib=config.ebs_volume_gib,
            max_capacity=config.max_capacity,
            idle_timeout=Duration.minutes(config.idle_timeout_minutes),
        )


@dataclass(frozen=True)
class SecurityGroups:
    primary: ec2.SecurityGroup
    core: ec2.SecurityGroup
    service_access: ec2.SecurityGroup | None


def security_groups(scope: Construct, vpc: ec2.IVpc, *, private: bool) -> SecurityGroups:
    """The EMR-managed groups of one cluster's nodes: EMR adds the rules it needs between them, and nothing else
    may reach them. Each workload's transient clusters get their own, so no cluster admits another's nodes."""

    def group(construct_id: str, description: str, outbound: bool = True) -> ec2.SecurityGroup:
        created = ec2.SecurityGroup(
            scope, construct_id, vpc=vpc, allow_all_outbound=outbound, description=description
        )
        Tags.of(created).add(*EMR_MANAGED_POLICY_TAG)
        return created

    return SecurityGroups(
        primary=group("PrimarySecurityGroup", "mlpipe EMR primary node (rules managed by EMR)"),
        core=group("CoreSecurityGroup", "mlpipe EMR core and task nodes (rules managed by EMR)"),
        service_access=group(
            "ServiceAccessSecurityGroup",
            "mlpipe EMR service access in private subnets (rules managed by EMR)",
            outbound=False,
        )
        if private
        else None,
    )


def instance_role(
    scope: Construct,
    construct_id: str,
    *,
    key: kms.IKey,
    artifacts_bucket: s3.IBucket,
    logs_bucket: s3.IBucket,
    description: str,
    role_name: str | None = None,
) -> iam.Role:
    """An EMR node role that reads the TLS certificates and writes the cluster's logs; the caller adds data."""
    role = iam.Role(
        scope,
        construct_id,
        assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
        description=description,
        role_name=role_name,
    )
    allow(role, S3_READ, [artifacts_bucket.arn_for_objects(TLS_CERTIFICATES_KEY)])
    allow(
        role,
        ["s3:PutObject"],
        [logs_bucket.arn_for_objects("emr/*")],
        reason="EMR pushes cluster and step logs under emr/ (keys named by cluster and step ids).",
    )
    allow_key(role, key)
    return role


def iam_role_name(prefix: str, suffix: str) -> str:
    """`<prefix>-<suffix>`, within IAM's 64 characters."""
    name = f"{prefix}-{suffix}"
    if len(name) > 64:
        raise ConfigError(f"stack_prefix: the IAM role name {name!r} would be over IAM's 64 characters")
    return name


def instance_profile(scope: Construct, construct_id: str, role: iam.Role) -> iam.CfnInstanceProfile:
    """The instance profile EMR launches nodes with; named as its role, which ClusterSpec relies on."""
    return iam.CfnInstanceProfile(
        scope, construct_id, roles=[role.role_name], instance_profile_name=role.role_name
    )


def allow_pass_role(service_role: iam.IRole, role: iam.IRole) -> None:
    """AmazonEMRServicePolicy_v2 leaves iam:PassRole of the nodes' role to the caller."""
    service_role.add_to_principal_policy(
        iam.PolicyStatement(actions=["iam:PassRole"], resources=[role.role_arn])
    )


class EmrSteps(Construct):
    """One workload's Spark steps: the feature driver's code and arguments, and the role its steps run as.

    transient: the workload's own cluster per run, whose nodes run as the workload's instance role.
    persistent: the shared cluster runs each step as the workload's runtime role (`execution_role`).
    Either role reads the step code, the workload's curated data, and writes its features; nothing else.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        emr_: Emr,
        workload: Workload,
        code: WorkloadCode,
        network: WorkloadNetwork | None,
        lake: DataLake,
        wheels: Sequence[s3_assets.Asset] = (),
        cluster_id: str | None = None,
    ) -> None:
        """`network` (transient mode) and `lake` as this stack imports them; `cluster_id`: the persistent
        cluster's."""
        super().__init__(scope, construct_id)
        self.code = code
        self.wheels = list(wheels)
        self.cluster_id = cluster_id
        self.features_arguments, self.inference_features_arguments = feature_driver_arguments(workload)

        # Spark step code: each entry script as a file (mlpipe's drivers, or the workload's whole scripts), and
        # mlpipe's step library as a zip for --py-files, which whole scripts may import too.
        f = workload.features
        scripts = (
            (workload.path(f.script), workload.path(f.inference_script))
            if f is not None and f.script
            else (EMR_STEPS_DIR / "build_features.py", EMR_STEPS_DIR / "inference_features.py")
        )
        self.features_script = s3_assets.Asset(self, "FeaturesScript", path=str(scripts[0]))
        self.inference_features_script = s3_assets.Asset(
            self, "InferenceFeaturesScript", path=str(scripts[1])
        )
        self.py_files = s3_assets.Asset(
            self, "StepLibrary", path=str(EMR_STEPS_DIR), exclude=["__pycache__", "*.pyc"]
        )

        self.cluster_spec: ClusterSpec | None = None
        self.execution_role: iam.Role | None = None
        if emr_.persistent:
            cluster_role = iam.Role.from_role_name(self, "ClusterRole", emr_.instance_role_name)
            role = iam.Role(
                self,
                "RuntimeRole",
                assumed_by=iam.ArnPrincipal(cluster_role.role_arn),
                description=f"mlpipe {workload.name} EMR steps (runtime role)",
            )
            # PropagateSourceIdentity: the cluster passes the caller's identity on to the step's session.
            role.assume_role_policy.add_statements(  # type: ignore[union-attr]
                iam.PolicyStatement(
                    actions=["sts:SetSourceIdentity"],
                    principals=[iam.ArnPrincipal(cluster_role.role_arn)],
                )
            )
            allow_key(role, lake.key)
            # ...and the cluster's role may assume it: a policy of this stack on the named shared role.
            iam.Policy(
                self,
                "ClusterAssumesRuntimeRole",
                roles=[cluster_role],
                statements=[iam.PolicyStatement(actions=["sts:AssumeRole", "sts:SetSourceIdentity"],
                                                resources=[role.role_arn])],
            )  # fmt: skip
            self.execution_role = role
        else:
            role = instance_role(self, "InstanceRole", key=lake.key, artifacts_bucket=lake.artifacts_bucket,
                                 logs_bucket=lake.logs_bucket, description=f"mlpipe {workload.name} EMR nodes")  # fmt: skip
            profile = instance_profile(self, "InstanceProfile", role)
            # Imported by name: the PassRole of this node role that EMR's service role needs (CDK's create-cluster
            # task adds it) becomes a policy of this stack, which comes and goes with the workload.
            service_role = iam.Role.from_role_name(self, "ServiceRole", emr_.service_role_name)
            assert network is not None, "a transient cluster runs in the workload network"
            self.cluster_spec = dataclasses.replace(
                emr_.cluster_spec(
                    f"{emr_.cluster_name}-{workload.name}",
                    role,
                    security_groups(self, network.vpc, private=emr_.private),
                    network.subnet_ids,
                ),
                service_role=service_role,
            )
            self.instance_profile = profile
        self.role = role
        allow(
            role,
            S3_READ,
            [a.bucket.arn_for_objects(a.s3_object_key)
             for a in (self.features_script, self.inference_features_script, self.py_files, code.asset,
                       *self.wheels)],
        )  # fmt: skip
        allow_objects(role, lake.curated_bucket, [f"curated/{workload.name}/"], S3_READ)
        # Spark's output committer writes, renames (copy + delete) and cleans up under the output prefix.
        allow_objects(role, lake.curated_bucket, [f"features/{workload.name}/"], S3_READ_WRITE_DELETE)

    def step_script_uris(self) -> dict[str, str]:
        """The S3 URIs the preprocessing Lambda puts into the spark-submit argv."""
        return {
            "FEATURES_SCRIPT_URI": self.features_script.s3_object_url,
            "INFERENCE_FEATURES_SCRIPT_URI": self.inference_features_script.s3_object_url,
            "EMR_PY_FILES_URI": self.py_files.s3_object_url,
            "WORKLOAD_CODE_URI": self.code.asset.s3_object_url,
            "FEATURES_ARGUMENTS": json.dumps(self.features_arguments),
            "INFERENCE_FEATURES_ARGUMENTS": json.dumps(self.inference_features_arguments),
            **(
                {"SPARK_DEPENDENCY_URIS": ",".join(w.s3_object_url for w in self.wheels)}
                if self.wheels
                else {}
            ),
        }


def persistent_cluster(scope: Construct, construct_id: str, spec: ClusterSpec) -> emr.CfnCluster:
    """The `persistent` mode's AWS::EMR::Cluster."""

    def fleet(f: Fleet) -> emr.CfnCluster.InstanceFleetConfigProperty:
        return emr.CfnCluster.InstanceFleetConfigProperty(
            name=f.role.lower(),
            target_on_demand_capacity=f.on_demand,
            target_spot_capacity=f.spot,
            instance_type_configs=[
                emr.CfnCluster.InstanceTypeConfigProperty(
                    instance_type=t,
                    weighted_capacity=1,
                    ebs_configuration=emr.CfnCluster.EbsConfigurationProperty(
                        ebs_block_device_configs=[
                            emr.CfnCluster.EbsBlockDeviceConfigProperty(
                                volume_specification=emr.CfnCluster.VolumeSpecificationProperty(
                                    size_in_gb=spec.ebs_volume_gib, volume_type="gp3"
                                ),
                                volumes_per_instance=1,
                            )
                        ],
                        ebs_optimized=True,
                    ),
                )
                for t in f.instance_types
            ],
            launch_specifications=emr.CfnCluster.InstanceFleetProvisioningSpecificationsProperty(
                spot_specification=emr.CfnCluster.SpotProvisioningSpecificationProperty(
                    allocation_strategy="price-capacity-optimized",
                    timeout_action="SWITCH_TO_ON_DEMAND",
                    timeout_duration_minutes=_SPOT_TIMEOUT_MINUTES,
                ),
            )
            if f.spot
            else None,
        )

    master, core, task = spec.fleets
    return emr.CfnCluster(
        scope,
        construct_id,
        name=spec.name,
        release_label=spec.release_label,
        applications=[emr.CfnCluster.ApplicationProperty(name="Spark")],
        instances=emr.CfnCluster.JobFlowInstancesConfigProperty(
            master_instance_fleet=fleet(master),
            core_instance_fleet=fleet(core),
            task_instance_fleets=[fleet(task)],
            ec2_subnet_ids=spec.subnet_ids,
            emr_managed_master_security_group=spec.primary_security_group,
            emr_managed_slave_security_group=spec.core_security_group,
            service_access_security_group=spec.service_access_security_group,
            keep_job_flow_alive_when_no_steps=True,
            termination_protected=False,
        ),
        job_flow_role=spec.instance_profile_name,
        service_role=spec.service_role.role_name,
        log_uri=spec.log_uri,
        security_configuration=spec.security_configuration,
        visible_to_all_users=True,
        managed_scaling_policy=emr.CfnCluster.ManagedScalingPolicyProperty(
            compute_limits=emr.CfnCluster.ComputeLimitsProperty(
                unit_type="InstanceFleetUnits",
                minimum_capacity_units=spec.min_capacity,
                maximum_capacity_units=spec.max_capacity,
                maximum_core_capacity_units=spec.core_capacity,
                maximum_on_demand_capacity_units=spec.on_demand_capacity,
            )
        ),
        auto_termination_policy=emr.CfnCluster.AutoTerminationPolicyProperty(
            idle_timeout=int(spec.idle_timeout.to_seconds())
        ),
        tags=[{"key": EMR_MANAGED_POLICY_TAG[0], "value": EMR_MANAGED_POLICY_TAG[1]}],  # type: ignore[list-item]
    )


def create_cluster_task(scope: Construct, construct_id: str, spec: ClusterSpec) -> tasks.EmrCreateCluster:
    """The `transient` mode's createCluster.sync task, from the same spec as the persistent cluster."""
    T = tasks.EmrCreateCluster

    def fleet(f: Fleet) -> tasks.EmrCreateCluster.InstanceFleetConfigProperty:
        return T.InstanceFleetConfigProperty(
            instance_fleet_type=getattr(T.InstanceRoleType, f.role),
            name=f.role.lower(),
            target_on_demand_capacity=f.on_demand,
            target_spot_capacity=f.spot,
            instance_type_configs=[
                T.InstanceTypeConfigProperty(
                    instance_type=t,
                    weighted_capacity=1,
                    ebs_configuration=T.EbsConfigurationProperty(
                        ebs_block_device_configs=[
                            T.EbsBlockDeviceConfigProperty(
                                volume_specification=T.VolumeSpecificationProperty(
                                    volume_size=Size.gibibytes(spec.ebs_volume_gib),
                                    volume_type=T.EbsBlockDeviceVolumeType.GP3,
                                ),
                                volumes_per_instance=1,
                            )
                        ],
                        ebs_optimized=True,
                    ),
                )
                for t in f.instance_types
            ],
            launch_specifications=T.InstanceFleetProvisioningSpecificationsProperty(
                spot_specification=T.SpotProvisioningSpecificationProperty(
                    allocation_strategy=T.SpotAllocationStrategy.PRICE_CAPACITY_OPTIMIZED,
                    timeout_action=T.SpotTimeoutAction.SWITCH_TO_ON_DEMAND,
                    timeout=Duration.minutes(_SPOT_TIMEOUT_MINUTES),
                ),
            )
            if f.spot
            else None,
        )

    return tasks.EmrCreateCluster(
        scope,
        construct_id,
        name=spec.name,
        release_label=spec.release_label,
        applications=[T.ApplicationConfigProperty(name="Spark")],
        instances=T.InstancesConfigProperty(
            instance_fleets=[fleet(f) for f in spec.fleets],
            ec2_subnet_ids=spec.subnet_ids,
            emr_managed_master_security_group=spec.primary_security_group,
            emr_managed_slave_security_group=spec.core_security_group,
            service_access_security_group=spec.service_access_security_group,
            termination_protected=False,  # CDK always sets KeepJobFlowAliveWhenNoSteps: steps come later
        ),
        cluster_role=spec.instance_role,
        service_role=spec.service_role,
        log_uri=spec.log_uri,
        security_configuration=spec.security_configuration,
        visible_to_all_users=True,
        managed_scaling_policy=T.ManagedScalingPolicyProperty(
            compute_limits=T.ManagedScalingComputeLimitsProperty(
                unit_type=T.ComputeLimitsUnitType.INSTANCE_FLEET_UNITS,
                minimum_capacity_units=spec.min_capacity,
                maximum_capacity_units=spec.max_capacity,
                maximum_core_capacity_units=spec.core_capacity,
                maximum_on_demand_capacity_units=spec.on_demand_capacity,
            )
        ),
        auto_termination_policy_idle_timeout=spec.idle_timeout,
        task_timeout=sfn.Timeout.duration(EMR_CREATE_CLUSTER_TIMEOUT),
        result_selector={"ClusterId.$": "$.ClusterId"},
        result_path="$.cluster",
    )
