"""A workload's Batch job definitions: training (one node, and multi-node DDP), evaluation and inference.

A workload that names `mlpipe.tabular` runs mlpipe's own trainer and scorer; any other runs its entrypoints
under mlpipe's launcher (`mlpipe_batch.run`), with its code package from S3 checked against its digest.
Either way the pipeline passes the same parameters: training takes `input`, `output`, `checkpoint` and
`hyperparameters`; evaluation and inference take `input`, `model` and `output`.
"""

from __future__ import annotations

from aws_cdk import Duration, Size
from aws_cdk import aws_batch as batch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from mlpipe.config import BatchConfig
from mlpipe.instances import gpu_instance
from mlpipe.workload import TABULAR_TRAINER, Workload
from stacks.constructs.common import (
    S3_READ,
    S3_READ_WRITE_DELETE,
    acknowledge,
    acknowledge_resource_wildcard,
    allow_key,
    allow_objects,
)
from stacks.constructs.workload_code import WorkloadCode

TRAINING_PARAMETERS = {"input": "", "output": "", "checkpoint": "", "hyperparameters": "{}"}
SCORING_PARAMETERS = {"input": "", "model": "", "output": ""}
# A fair-share queue refuses a job whose definition has no scheduling priority and whose submission gives none.
# One priority for every job: the order within a workload's share stays first come, first served.
SCHEDULING_PRIORITY = 50


def commands(workload: Workload, code: WorkloadCode) -> dict[str, list[str]]:
    """The container command of each kind of job: `training`, `evaluation`, `inference`."""
    training = ["--output", "Ref::output", "--checkpoint", "Ref::checkpoint"]
    training += ["--hyperparameters", "Ref::hyperparameters"]
    scoring = ["--model", "Ref::model", "--output", "Ref::output"]
    if workload.train.trainer == TABULAR_TRAINER:
        infer = ["python", "-m", "mlpipe_batch.infer", "--manifest", "Ref::input", *scoring]
        return {
            "training": ["python", "-m", "mlpipe_batch.train", "--manifest", "Ref::input", *training],
            "evaluation": [*infer, "--split", "test"],
            "inference": infer,
        }
    launcher = ["python", "-m", "mlpipe_batch.run", "--code", code.uri, "--code-sha256", code.sha256]
    for wheel in workload.dependencies.batch:
        launcher += ["--wheel", wheel]

    def run(entrypoint: str, arguments: list[str]) -> list[str]:
        return [*launcher, "--entrypoint", entrypoint, "--input", "Ref::input", *arguments]

    return {
        "training": run(workload.train.entrypoint, training),
        "evaluation": run(workload.evaluate.entrypoint, scoring),
        "inference": run(workload.infer.entrypoint, scoring),
    }


class WorkloadJobs(Construct):
    """The job definitions and job roles of one workload, on the shared image and log group."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: BatchConfig,
        workload: Workload,
        code: WorkloadCode,
        image: ecs.ContainerImage,
        image_hash: str,
        key: kms.IKey,
        raw_bucket: s3.IBucket,
        curated_bucket: s3.IBucket,
        artifacts_bucket: s3.IBucket,
        log_group: logs.ILogGroup,
        vcpu_limit: int,
        vcpu_resource_name: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.commands = commands(workload, code)
        self.image_hash = image_hash  # what the jobs run: mlpipe's image, or the workload's own
        # The workload's vCPU cap: each job holds its vCPUs of this resource while it runs, and Batch keeps
        # further jobs RUNNABLE until enough is free. Fair share alone has no ceiling on EC2 queues.
        self.vcpus = batch.CfnConsumableResource(
            self,
            "Vcpus",
            consumable_resource_name=vcpu_resource_name,
            resource_type="REPLENISHABLE",
            total_quantity=vcpu_limit,
        )
        uses_code = workload.train.trainer != TABULAR_TRAINER  # mlpipe.tabular runs from the image alone

        # A role per kind of job: all read features and write run outputs (committed by copy-then-delete);
        # only training touches checkpoints (which rotate: older ones are deleted).
        # What the jobs read: the feature stage's output, else the curated data, else the raw input.
        if workload.features is not None:
            input_bucket, input_prefix = curated_bucket, f"features/{workload.name}/"
        elif workload.clean is not None:
            input_bucket, input_prefix = curated_bucket, f"curated/{workload.name}/"
        else:
            input_bucket, input_prefix = raw_bucket, workload.raw_prefix
        self.input_uri = input_bucket.s3_url_for_object(input_prefix)
        """The one prefix the jobs may read (the client checks a job's --input against it)."""

        def job_role(construct_id: str, description: str, artifact_prefixes: list[str]) -> iam.Role:
            role = iam.Role(
                self,
                construct_id,
                assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
                description=description,
            )
            allow_objects(role, input_bucket, [input_prefix], S3_READ)
            allow_objects(role, artifacts_bucket, artifact_prefixes, S3_READ_WRITE_DELETE)
            allow_key(role, key)
            if uses_code:
                code.grant_read(role)
            return role

        self.training_role = job_role(
            "TrainingJobRole",
            f"mlpipe {workload.name} Batch training",
            [f"runs/{workload.name}/", f"checkpoints/{workload.name}/"],
        )
        self.inference_role = job_role(
            "InferenceJobRole",
            f"mlpipe {workload.name} Batch evaluation and inference",
            [f"runs/{workload.name}/"],
        )
        logging = ecs.LogDriver.aws_logs(stream_prefix="mlpipe", log_group=log_group)
        # Spot reclaims (status reason "Host EC2 (instance i-…) terminated.") are retried;
        # an application error (any non-zero exit) is not.
        retry_strategies = [
            batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.SPOT_INSTANCE_RECLAIMED),
            batch.RetryStrategy.of(batch.Action.EXIT, batch.Reason.custom(on_reason="*")),
        ]
        timeout = Duration.minutes(config.job_timeout_minutes)

        def container(
            construct_id: str, *, role: iam.IRole, command: list[str], gpus: int, vcpus: int, memory_mib: int
        ) -> batch.EcsEc2ContainerDefinition:
            definition = batch.EcsEc2ContainerDefinition(
                self,
                construct_id,
                image=image,
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
            acknowledge_resource_wildcard(
                definition.execution_role,
                log_group.log_group_arn,  # `<group ARN>:*`: its streams
                "The log streams of the shared Batch job log group: each job creates its own at run time.",
            )
            return definition

        def single_node(
            construct_id: str, container_: batch.EcsEc2ContainerDefinition, parameters: dict[str, str]
        ):
            return batch.EcsJobDefinition(
                self,
                construct_id,
                container=container_,
                parameters=parameters,
                retry_attempts=config.retry_attempts,
                retry_strategies=retry_strategies,
                timeout=timeout,
                propagate_tags=True,
                scheduling_priority=SCHEDULING_PRIORITY,
            )

        self.training_job_definition = single_node(
            "TrainingJobDefinition",
            container(
                "TrainingContainer",
                role=self.training_role,
                command=self.commands["training"],
                gpus=config.training_gpus,
                vcpus=config.training_vcpus,
                memory_mib=config.training_memory_mib,
            ),
            TRAINING_PARAMETERS,
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
                        role=self.training_role,
                        command=self.commands["training"],
                        gpus=config.multinode_gpus_per_node,
                        vcpus=node.vcpus - 2,
                        memory_mib=int(node.memory_mib * 0.9),
                    ),
                )
            ],
            parameters=TRAINING_PARAMETERS,
            retry_attempts=config.retry_attempts,
            retry_strategies=retry_strategies,
            timeout=timeout,
            propagate_tags=True,
            scheduling_priority=SCHEDULING_PRIORITY,
        )
        self._consume(self.multinode_job_definition, node.vcpus - 2, "NodeProperties.NodeRangeProperties.0.")
        # Evaluation and inference run the same way on the same shape: the model is loaded as inference does.
        self.evaluation_job_definition, self.inference_job_definition = (
            single_node(
                f"{kind.capitalize()}JobDefinition",
                container(
                    f"{kind.capitalize()}Container",
                    role=self.inference_role,
                    command=self.commands[kind],
                    gpus=config.inference_gpus,
                    vcpus=config.inference_vcpus,
                    memory_mib=config.inference_memory_mib,
                ),
                SCORING_PARAMETERS,
            )
            for kind in ("evaluation", "inference")
        )
        self._consume(self.training_job_definition, config.training_vcpus)
        for definition in (self.evaluation_job_definition, self.inference_job_definition):
            self._consume(definition, config.inference_vcpus)

    def _consume(self, definition: batch.IJobDefinition, vcpus: int, path: str = "") -> None:
        """The job (for a multi-node job: each node) holds `vcpus` of the workload's cap while it runs."""
        resource = definition.node.default_child
        assert isinstance(resource, batch.CfnJobDefinition)
        resource.add_property_override(
            f"{path}ConsumableResourceProperties",
            {"ConsumableResourceList": [{"ConsumableResource": self.vcpus.attr_consumable_resource_arn,
                                         "Quantity": vcpus}]},
        )  # fmt: skip
