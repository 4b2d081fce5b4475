"""Creates mlpipe's seven stacks for one environment and wires them together."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import App, Environment, Tags

from mlpipe.config import MlpipeConfig
from mlpipe.workload import Workload, check_deployable
from stacks.base import MlpipeStack
from stacks.batch_stack import BatchStack
from stacks.constructs.workload_code import stage
from stacks.emr_stack import EmrStack
from stacks.glue_stack import GlueStack
from stacks.monitoring_stack import MonitoringStack
from stacks.network_stack import NetworkStack
from stacks.pipeline_stack import PipelineStack
from stacks.storage_stack import StorageStack


@dataclass(frozen=True)
class Platform:
    storage: StorageStack
    network: NetworkStack
    emr: EmrStack
    batch: BatchStack
    glue: GlueStack
    pipeline: PipelineStack
    monitoring: MonitoringStack

    def stacks(self) -> list[MlpipeStack]:
        return [self.storage, self.network, self.emr, self.batch, self.glue, self.pipeline, self.monitoring]


def create_platform(app: App, config: MlpipeConfig, *, workloads: Sequence[Workload]) -> Platform:
    """The stacks for `config`'s environment; `workloads` are the validated folders that config lists."""
    (workload,) = workloads  # one pipeline per app in this version (mlpipe.config checks the count)
    check_deployable(workload, f"{workload.root.name}/workload.toml")
    code = stage(workload)  # built once: the Glue and EMR stacks upload the same file
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
    s = storage.storage
    network = NetworkStack(
        app, name("Network"), **kwargs("Network", f"VPC ({config.network.profile} profile)")
    )
    n = network.network
    emr = EmrStack(
        app,
        name("Emr"),
        network=n,
        storage=s,
        workload=workload,
        code=code,
        **kwargs("Emr", f"EMR on EC2 ({config.emr.mode})"),
    )
    batch = BatchStack(
        app,
        name("Batch"),
        network=n,
        storage=s,
        workload=workload,
        code=code,
        **kwargs("Batch", "AWS Batch GPU training"),
    )
    glue = GlueStack(app, name("Glue"), storage=s, workload=workload, code=code, **kwargs("Glue", "Glue ETL"))
    pipeline = PipelineStack(
        app,
        name("Pipeline"),
        storage=s,
        glue_etl=glue.glue,
        emr=emr.emr,
        batch=batch.batch,
        jobs=batch.jobs,
        workload=workload,
        **kwargs("Pipeline", "Lambdas and the Step Functions state machine"),
    )
    monitoring = MonitoringStack(
        app,
        name("Monitoring"),
        pipeline=pipeline.pipeline,
        glue_etl=glue.glue,
        **kwargs("Monitoring", "dashboard and alarms"),
    )
    platform = Platform(storage, network, emr, batch, glue, pipeline, monitoring)
    for stack in platform.stacks()[1:]:
        stack.add_stack_dependency(storage)  # they name the lake's buckets without cross-stack references
    for stack in platform.stacks():
        Tags.of(stack).add("project", "mlpipe")
        Tags.of(stack).add("mlpipe:env", config.env)
    return platform
