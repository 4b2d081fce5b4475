"""AWS Batch for GPU training and inference: compute environments, job queues and the image that every
workload's job definitions (stacks/constructs/workload_jobs.py) run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Duration, Stack
from aws_cdk import aws_batch as batch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from constructs import Construct

from mlpipe.config import BatchConfig, MlpipeConfig
from mlpipe.instances import BATCH_GPU_IMAGE_TYPE
from stacks.constructs.common import acknowledge
from stacks.constructs.handoff import publish, receive
from stacks.defaults import BATCH_CONTAINERS_DIR
from stacks.dlc_image import dlc_training_image

# Root volume of the GPU hosts: the Deep Learning Container image alone is over 15 GiB.
_ROOT_VOLUME_GIB = 200
_DOCKER_EXCLUDES = ["**/__pycache__", "**/*.pyc", "**/.pytest_cache"]


class BatchCompute(Construct):
    """GPU compute on AWS Batch.

    Three managed EC2 compute environments scale from 0 vCPUs: Spot (price-capacity-optimized), On-Demand, and
    On-Demand for multi-node jobs (one subnet, a cluster placement group). The `spot_first` queue tries Spot and
    falls back to On-Demand; the `on_demand` queue (higher priority) serves multi-node jobs, which Batch does
    not run on Spot, on their own environment. Hosts come from a launch template that
    requires IMDSv2 and encrypts the root volume.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: BatchConfig,
        vpc: ec2.IVpc,
        subnets: Sequence[ec2.ISubnet],
        shares: Sequence[str],
    ) -> None:
        super().__init__(scope, construct_id)
        region = Stack.of(self).region
        base_image = dlc_training_image(region, config.dlc_pytorch_version, config.dlc_python_version)
        self.base_image = base_image  # a workload's own image builds on it too

        self.security_group = ec2.SecurityGroup(
            self,
            "HostSecurityGroup",
            vpc=vpc,
            allow_all_outbound=True,
            description="mlpipe Batch GPU hosts: no inbound except between the nodes of one job",
        )
        # Multi-node DDP: NCCL and the rendezvous need every port between the nodes of a job.
        self.security_group.add_ingress_rule(
            self.security_group, ec2.Port.all_traffic(), "DDP between job nodes"
        )

        launch_template = ec2.LaunchTemplate(
            self,
            "LaunchTemplate",
            require_imdsv2=True,
            http_put_response_hop_limit=2,  # containers reach IMDS through the docker bridge
            block_devices=[
                ec2.BlockDevice(
                    device_name="/dev/xvda",
                    volume=ec2.BlockDeviceVolume.ebs(
                        _ROOT_VOLUME_GIB, encrypted=True, volume_type=ec2.EbsDeviceVolumeType.GP3
                    ),
                )
            ],
        )
        gpu_ami = [batch.EcsMachineImage(image_type=batch.EcsMachineImageType(BATCH_GPU_IMAGE_TYPE))]

        all_subnets = ec2.SubnetSelection(subnets=list(subnets))

        def environment(
            construct_id: str,
            *,
            spot: bool,
            instance_types: tuple[str, ...],
            max_vcpus: int,
            vpc_subnets: ec2.SubnetSelection = all_subnets,
            placement_group: ec2.IPlacementGroup | None = None,
        ) -> batch.ManagedEc2EcsComputeEnvironment:
            env = batch.ManagedEc2EcsComputeEnvironment(
                self,
                construct_id,
                vpc=vpc,
                vpc_subnets=vpc_subnets,
                placement_group=placement_group,
                security_groups=[self.security_group],
                spot=spot,
                allocation_strategy=(
                    batch.AllocationStrategy.SPOT_PRICE_CAPACITY_OPTIMIZED
                    if spot
                    else batch.AllocationStrategy.BEST_FIT_PROGRESSIVE
                ),
                instance_types=[ec2.InstanceType(t) for t in instance_types],
                use_optimal_instance_classes=False,
                minv_cpus=0,
                maxv_cpus=max_vcpus,
                images=gpu_ami,
                launch_template=launch_template,
                update_to_latest_image_version=True,
            )
            acknowledge(
                env,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AmazonEC2ContainerServiceforEC2Role]",
                "The ECS agent on Batch hosts needs AWS's container-instance policy to register and pull.",
            )
            return env

        self.spot_environment = environment(
            "SpotEnvironment",
            spot=True,
            instance_types=config.spot_instance_types,
            max_vcpus=config.max_vcpus_spot,
        )
        self.on_demand_environment = environment(
            "OnDemandEnvironment",
            spot=False,
            instance_types=config.on_demand_instance_types,
            max_vcpus=config.max_vcpus_on_demand,
        )
        # Multi-node jobs on their own On-Demand environment: one instance type, in one subnet, in a cluster
        # placement group (Batch's guide, "Compute environments for multi-node parallel jobs": a cluster placement
        # group in a single Availability Zone), so the nodes of a DDP job sit close together.
        self.multinode_environment = environment(
            "MultiNodeEnvironment",
            spot=False,
            instance_types=(config.multinode_instance_type,),
            max_vcpus=config.max_vcpus_multinode,
            vpc_subnets=ec2.SubnetSelection(subnets=[subnets[0]]),
            placement_group=ec2.PlacementGroup(
                self, "MultiNodePlacementGroup", strategy=ec2.PlacementGroupStrategy.CLUSTER
            ),
        )

        # A job that can never start (no capacity, a quota of 0, more resources than any instance has) is
        # cancelled after runnable_timeout_minutes instead of holding its execution until the execution timeout.
        stuck_runnable = [
            batch.JobStateTimeLimitAction(
                max_time=Duration.minutes(config.runnable_timeout_minutes),
                reason=reason,
                action=batch.JobStateTimeLimitActionsAction.CANCEL,
                state=batch.JobStateTimeLimitActionsState.RUNNABLE,
            )
            for reason in (
                batch.JobStateTimeLimitActionsReason.INSUFFICIENT_INSTANCE_CAPACITY,
                batch.JobStateTimeLimitActionsReason.COMPUTE_ENVIRONMENT_MAX_RESOURCE,
                batch.JobStateTimeLimitActionsReason.JOB_RESOURCE_REQUIREMENT,
            )
        ]
        # One share per workload, equal weights: a busy workload cannot starve another on the shared queues.
        # Every job then needs its workload's share identifier (SubmitJob refuses one without).
        self.scheduling_policy = batch.FairshareSchedulingPolicy(
            self,
            "FairShare",
            share_decay=Duration.seconds(config.share_decay_seconds),
            shares=[batch.Share(share_identifier=share, weight_factor=1) for share in shares],
        )
        # New construct ids: Batch cannot add a fair-share policy to an existing FIFO queue (CreateJobQueue), so
        # these queues replace the FIFO ones of earlier deployments instead of updating them.
        self.spot_first_queue = batch.JobQueue(
            self,
            "FairShareSpotFirstQueue",
            priority=10,
            compute_environments=[
                batch.OrderedComputeEnvironment(compute_environment=self.spot_environment, order=1),
                batch.OrderedComputeEnvironment(compute_environment=self.on_demand_environment, order=2),
            ],
            job_state_time_limit_actions=stuck_runnable,
            scheduling_policy=self.scheduling_policy,
        )
        self.on_demand_queue = batch.JobQueue(
            self,
            "FairShareOnDemandQueue",
            priority=20,
            compute_environments=[
                batch.OrderedComputeEnvironment(compute_environment=self.multinode_environment, order=1),
            ],
            job_state_time_limit_actions=stuck_runnable,
            scheduling_policy=self.scheduling_policy,
        )

        # One image serves every workload's jobs (the job definitions give the command): built and pushed once.
        self.image_asset = ecr_assets.DockerImageAsset(
            self,
            "Image",
            directory=str(BATCH_CONTAINERS_DIR),
            build_args={"BASE_IMAGE": base_image},
            platform=ecr_assets.Platform.LINUX_AMD64,
            exclude=_DOCKER_EXCLUDES,
        )
        self.image = ecs.ContainerImage.from_docker_image_asset(self.image_asset)


# Handoff paths (handoff.py): the jobs' log group name, the queues' ARNs.
JOB_LOG_GROUP = "batch/job-log-group"
SPOT_FIRST_QUEUE = "batch/spot-first-queue-arn"
ON_DEMAND_QUEUE = "batch/on-demand-queue-arn"


@dataclass(frozen=True)
class JobQueues:
    """The shared fair-share queues, as a workload's stack sees them."""

    spot_first: batch.IJobQueue
    on_demand: batch.IJobQueue


def publish_queues(scope: Construct, config: MlpipeConfig, compute: BatchCompute) -> None:
    publish(
        scope, config, SPOT_FIRST_QUEUE, compute.spot_first_queue.job_queue_arn, "the Spot-first job queue"
    )
    publish(scope, config, ON_DEMAND_QUEUE, compute.on_demand_queue.job_queue_arn,
            "the On-Demand (multi-node) job queue")  # fmt: skip


def import_queues(scope: Construct, config: MlpipeConfig) -> JobQueues:
    def queue(construct_id: str, path: str) -> batch.IJobQueue:
        return batch.JobQueue.from_job_queue_arn(scope, construct_id, receive(scope, config, path))

    return JobQueues(
        spot_first=queue("SpotFirstQueue", SPOT_FIRST_QUEUE),
        on_demand=queue("OnDemandQueue", ON_DEMAND_QUEUE),
    )
