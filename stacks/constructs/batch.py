"""AWS Batch for GPU training and inference: compute environments, job queues and job definitions."""

from __future__ import annotations

from aws_cdk import Duration, Size, Stack
from aws_cdk import aws_batch as batch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from mlpipe.config import BatchConfig
from mlpipe.instances import gpu_instance
from stacks.constructs.common import S3_READ, S3_READ_WRITE_DELETE, acknowledge, allow_key, allow_objects
from stacks.defaults import BATCH_CONTAINERS_DIR
from stacks.dlc_image import dlc_training_image

# Root volume of the GPU hosts: the Deep Learning Container image alone is over 15 GiB.
_ROOT_VOLUME_GIB = 200
_DOCKER_EXCLUDES = ["**/__pycache__", "**/*.pyc", "**/.pytest_cache"]


class BatchCompute(Construct):
    """GPU compute on AWS Batch.

    Two managed EC2 compute environments scale from 0 vCPUs: Spot (price-capacity-optimized) and On-Demand.
    The `spot_first` queue tries Spot and falls back to On-Demand; the `on_demand` queue (higher priority)
    serves multi-node jobs, which Batch does not run on Spot. Hosts come from a launch template that
    requires IMDSv2 and encrypts the root volume.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: BatchConfig,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        key: kms.IKey,
        curated_bucket: s3.IBucket,
        artifacts_bucket: s3.IBucket,
        log_group: logs.ILogGroup,
    ) -> None:
        super().__init__(scope, construct_id)
        region = Stack.of(self).region
        base_image = dlc_training_image(region, config.dlc_pytorch_version, config.dlc_python_version)

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
        gpu_ami = [batch.EcsMachineImage(image_type=batch.EcsMachineImageType.ECS_AL2023_NVIDIA)]

        def environment(construct_id: str, *, spot: bool, instance_types: tuple[str, ...], max_vcpus: int):
            env = batch.ManagedEc2EcsComputeEnvironment(
                self,
                construct_id,
                vpc=vpc,
                vpc_subnets=subnets,
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
        self.spot_first_queue = batch.JobQueue(
            self,
            "SpotFirstQueue",
            priority=10,
            compute_environments=[
                batch.OrderedComputeEnvironment(compute_environment=self.spot_environment, order=1),
                batch.OrderedComputeEnvironment(compute_environment=self.on_demand_environment, order=2),
            ],
            job_state_time_limit_actions=stuck_runnable,
        )
        self.on_demand_queue = batch.JobQueue(
            self,
            "OnDemandQueue",
            priority=20,
            compute_environments=[
                batch.OrderedComputeEnvironment(compute_environment=self.on_demand_environment, order=1),
            ],
            job_state_time_limit_actions=stuck_runnable,
        )

        # A role per kind of job: both read features and write run outputs (committed by copy-then-delete);
        # only training touches checkpoints (which rotate: older ones are deleted).
        def job_role(construct_id: str, description: str, artifact_prefixes: list[str]) -> iam.Role:
            role = iam.Role(
                self,
                construct_id,
                assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
                description=description,
            )
            allow_objects(role, curated_bucket, ["features/"], S3_READ)
            allow_objects(role, artifacts_bucket, artifact_prefixes, S3_READ_WRITE_DELETE)
            allow_key(role, key)
            return role

        self.training_role = job_role(
            "TrainingJobRole", "mlpipe Batch training containers", ["runs/", "checkpoints/"]
        )
        self.inference_role = job_role("InferenceJobRole", "mlpipe Batch inference containers", ["runs/"])

        # One image serves training and inference (the job definitions give the command): built and pushed once.
        self.image_asset = ecr_assets.DockerImageAsset(
            self,
            "Image",
            directory=str(BATCH_CONTAINERS_DIR),
            build_args={"BASE_IMAGE": base_image},
            platform=ecr_assets.Platform.LINUX_AMD64,
            exclude=_DOCKER_EXCLUDES,
        )
        training_image = inference_image = ecs.ContainerImage.from_docker_image_asset(self.image_asset)
        logging = ecs.LogDriver.aws_logs(stream_prefix="mlpipe", log_group=log_group)

        # Spot reclaims (status reason "Host EC2 (instance i-…) terminated.") are retried;
        # an application error (any non-zero exit) is not.
        retry_strategies = [
            batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.SPOT_INSTANCE_RECLAIMED),
            batch.RetryStrategy.of(batch.Action.EXIT, batch.Reason.custom(on_reason="*")),
        ]
        timeout = Duration.minutes(config.job_timeout_minutes)
        self.training_command = train_command = [
            "python",
            "-m",
            "mlpipe_batch.train",
            "--manifest",
            "Ref::manifest",
            "--output",
            "Ref::output",
            "--checkpoint",
            "Ref::checkpoint",
            "--hyperparameters",
            "Ref::hyperparameters",
        ]
        train_parameters = {"manifest": "", "output": "", "checkpoint": "", "hyperparameters": "{}"}

        def container(
            construct_id: str,
            *,
            image_: ecs.ContainerImage,
            role: iam.IRole,
            command: list[str],
            gpus: int,
            vcpus: int,
            memory_mib: int,
        ) -> batch.EcsEc2ContainerDefinition:
            definition = batch.EcsEc2ContainerDefinition(
                self,
                construct_id,
                image=image_,
                command=command,
                gpu=gpus,
                cpu=vcpus,
                memory=Size.mebibytes(memory_mib),
                job_role=role,
                logging=logging,
                readonly_root_filesystem=False,  # PyTorch and NCCL write caches under /tmp and /root
                # A crash in native code (a segfault, or an abort in NCCL, gloo or CUDA) leaves every thread's
                # Python traceback in the job's log (faulthandler); local mode runs the jobs with it too.
                environment={"PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1", "NCCL_DEBUG": "WARN"},
            )
            acknowledge(
                definition.execution_role,
                "AwsSolutions-IAM5[Resource::*]",
                "ecr:GetAuthorizationToken (pulling the image) has no resource-level permissions.",
            )
            return definition

        self.training_job_definition = batch.EcsJobDefinition(
            self,
            "TrainingJobDefinition",
            container=container(
                "TrainingContainer",
                image_=training_image,
                role=self.training_role,
                command=train_command,
                gpus=config.training_gpus,
                vcpus=config.training_vcpus,
                memory_mib=config.training_memory_mib,
            ),
            parameters=train_parameters,
            retry_attempts=config.retry_attempts,
            retry_strategies=retry_strategies,
            timeout=timeout,
            propagate_tags=True,
        )

        node = gpu_instance(config.multinode_instance_type)
        self.multinode_job_definition = batch.MultiNodeJobDefinition(
            self,
            "MultiNodeTrainingJobDefinition",
            instance_type=ec2.InstanceType(config.multinode_instance_type),
            main_node=0,
            containers=[
                batch.MultiNodeContainer(
                    start_node=0,
                    end_node=config.multinode_nodes - 1,
                    container=container(
                        "MultiNodeContainer",
                        image_=training_image,
                        role=self.training_role,
                        command=train_command,
                        gpus=config.multinode_gpus_per_node,
                        vcpus=node.vcpus - 2,
                        memory_mib=int(node.memory_mib * 0.9),
                    ),
                )
            ],
            parameters=train_parameters,
            retry_attempts=config.retry_attempts,
            retry_strategies=retry_strategies,
            timeout=timeout,
            propagate_tags=True,
        )

        self.inference_command = [
            "python", "-m", "mlpipe_batch.infer",
            "--manifest", "Ref::manifest", "--model", "Ref::model", "--output", "Ref::output",
        ]  # fmt: skip
        self.inference_job_definition = batch.EcsJobDefinition(
            self,
            "InferenceJobDefinition",
            container=container(
                "InferenceContainer",
                image_=inference_image,
                role=self.inference_role,
                command=self.inference_command,
                gpus=config.inference_gpus,
                vcpus=config.inference_vcpus,
                memory_mib=config.inference_memory_mib,
            ),
            parameters={"manifest": "", "model": "", "output": ""},
            retry_attempts=config.retry_attempts,
            retry_strategies=retry_strategies,
            timeout=timeout,
            propagate_tags=True,
        )
