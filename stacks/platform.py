"""Creates mlpipe's stacks for one environment: the shared platform (storage, network, EMR, Batch,
monitoring) and one pipeline stack per workload, and wires them together."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import App, Environment, Tags

from mlpipe.config import MlpipeConfig
from mlpipe.workload import Workload, WorkloadError, check_deployable
from stacks.base import MlpipeStack
from stacks.batch_stack import BatchStack
from stacks.constructs.monitoring import MAX_TEMPLATE_PARAMETERS, parameters_read
from stacks.constructs.workload_code import stage
from stacks.emr_stack import EmrStack
from stacks.monitoring_stack import MonitoringStack
from stacks.network_stack import NetworkStack
from stacks.storage_stack import StorageStack
from stacks.workload_stack import WorkloadStack


@dataclass(frozen=True)
class Platform:
    storage: StorageStack
    network: NetworkStack
    emr: EmrStack
    batch: BatchStack
    workloads: dict[str, WorkloadStack]
    monitoring: MonitoringStack

    def stacks(self) -> list[MlpipeStack]:
        return [self.storage, self.network, self.emr, self.batch, *self.workloads.values(), self.monitoring]


def workload_concern(name: str) -> str:
    """The concern of a workload's stack: `Workload-churn` is MlpipeDev-Workload-churn."""
    return f"Workload-{name}"


def create_platform(app: App, config: MlpipeConfig, *, workloads: Sequence[Workload]) -> Platform:
    """The stacks for `config`'s environment: the shared platform, and one pipeline stack per workload in
    `workloads` (the validated folders that config lists)."""
    for workload in workloads:
        source = f"{workload.root.name}/workload.toml"
        check_deployable(workload, source)
        count = len(workload.all_candidates())
        if count > config.pipeline.max_candidates:
            raise WorkloadError(
                f"{source}: {'search' if workload.search else 'candidates'}: makes {count} candidates, more than "
                f"environments.{config.env}.pipeline.max_candidates ({config.pipeline.max_candidates})"
            )
    # The Monitoring stack reads each workload's values as template parameters (one more: the bootstrap version).
    if parameters_read([w.clean is not None for w in workloads]) + 1 > MAX_TEMPLATE_PARAMETERS:
        raise WorkloadError(
            f"workloads: {len(workloads)} workloads are more than the Monitoring stack can read "
            f"(CloudFormation allows {MAX_TEMPLATE_PARAMETERS} parameters per template)"
        )
    env = Environment(account=config.account, region=config.region)
    name = config.stack_name

    def kwargs(concern: str, description: str) -> dict[str, object]:
        return {
            "stack_name": name(concern),
            "env": env,
            "config": config,
            "description": f"mlpipe ({config.env}): {description}",
        }

    storage = StorageStack(
        app, name("Storage"), **kwargs("Storage", "KMS key, data-lake buckets, Glue database")
    )
    network = NetworkStack(
        app, name("Network"), **kwargs("Network", f"VPC ({config.network.profile} profile)")
    )
    emr = EmrStack(app, name("Emr"), **kwargs("Emr", f"EMR on EC2 ({config.emr.mode})"))
    batch = BatchStack(
        app,
        name("Batch"),
        workloads=workloads,
        **kwargs("Batch", "AWS Batch GPU compute and fair-share queues"),
    )
    pipelines: dict[str, WorkloadStack] = {}
    for workload in workloads:
        concern = workload_concern(workload.name)
        pipelines[workload.name] = WorkloadStack(
            app,
            name(concern),
            workload=workload,
            package=stage(workload),
            emr_=emr.emr,
            batch_=batch.batch,
            **kwargs(
                concern, f"workload {workload.name}: Glue, EMR steps, Batch jobs, Lambdas, state machine"
            ),
        )
    monitoring = MonitoringStack(
        app,
        name("Monitoring"),
        workloads=workloads,
        **kwargs("Monitoring", "dashboard and alarms"),
    )
    platform = Platform(storage, network, emr, batch, pipelines, monitoring)
    # A stack deploys after those whose values it reads at its deploy (handoff.py) and those whose resources it
    # names without a reference (the lake's buckets, EMR's roles and security configuration).
    for stack in (network, emr, batch):
        stack.add_stack_dependency(storage)
    emr.add_stack_dependency(network)
    batch.add_stack_dependency(network)
    for pipeline in pipelines.values():
        for producer in (storage, network, emr, batch):
            pipeline.add_stack_dependency(producer)
        monitoring.add_stack_dependency(pipeline)
    monitoring.add_stack_dependency(storage)
    for stack in platform.stacks():
        Tags.of(stack).add("project", "mlpipe")
        Tags.of(stack).add("mlpipe:env", config.env)
    for w, stack in pipelines.items():
        Tags.of(stack).add("mlpipe:workload", w)
    return platform
