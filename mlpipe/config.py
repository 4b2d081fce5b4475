"""mlpipe's deployment configuration: one frozen dataclass per environment, validated in one place.

`cdk.json` holds the context: `env` (which environment to synthesize, `-c env=prod` overrides it) and
`environments`, a map from environment name to the keys below that differ from their defaults. Every key
is documented next to its field; docs/configuration.md lists them all with their defaults. A bad value
(an unknown key, a wrong type, a value out of range, a GPU count the instance types cannot give, an
unknown EMR mode) raises ConfigError with one message that names the key.

This module is plain Python (no CDK import): the CLI and the tests use it too.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args, get_origin

from mlpipe.instances import (
    BATCH_GPU_IMAGE_TYPE,
    FAMILIES_WITHOUT_GPU_IMAGE,
    GPU_INSTANCES,
    GpuInstance,
    instance_family,
)

# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 3653)
# The Glue runtime mlpipe's scripts are written and tested for (pyspark is pinned to its Spark version).
GLUE_VERSION = "5.1"
SPARK_VERSION = "3.5.6"
# Memory that the ECS agent and the OS keep on a Batch host; a job asking for more than the rest never runs.
_ECS_RESERVED_MEMORY_FRACTION = 0.06
NOT_A_KEY = "mlpipe.not_a_key"
"""Field metadata of a dataclass field that the program sets, never the file: no key of that name is read."""


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the key."""


@dataclass(frozen=True)
class NetworkConfig:
    profile: Literal["dev", "prod"] = "dev"
    """dev: public subnets, no NAT gateway, security groups without inbound rules (zero idle cost).
    prod: private subnets whose egress is `prod_egress`."""
    prod_egress: Literal["nat", "endpoints"] = "nat"
    """prod only. nat: NAT gateways (`nat_gateways` of them); endpoints: interface VPC endpoints, no NAT."""
    nat_gateways: int = 1
    """prod with nat only: 1 (cheapest) or 2 (one per AZ, survives an AZ outage)."""
    cidr: str = "10.40.0.0/16"
    """The VPC's IPv4 CIDR block."""
    flow_log_retention_days: int = 90
    """Days the VPC flow logs are kept (under vpc-flow-logs/ in the logs bucket)."""


@dataclass(frozen=True)
class EmrConfig:
    mode: Literal["transient", "persistent"] = "transient"
    """transient: the state machine creates a cluster per run and terminates it (zero idle cost).
    persistent: a cluster in the stack (with an auto-termination policy); the pipeline adds steps to it."""
    release_label: str = "emr-7.12.0"
    """EMR on EC2 release (7.x; emr-7.12.0 runs Spark 3.5.6, as pinned for the scripts)."""
    primary_instance_types: tuple[str, ...] = ("m7g.xlarge", "m6g.xlarge")
    """Instance types the primary fleet may use (On-Demand)."""
    core_instance_types: tuple[str, ...] = ("m7g.2xlarge", "m6g.2xlarge", "r7g.2xlarge")
    """Instance types the core fleet may use (On-Demand: it holds HDFS and the driver's executors)."""
    task_instance_types: tuple[str, ...] = ("m7g.2xlarge", "m6g.2xlarge", "r7g.2xlarge", "c7g.4xlarge")
    """Instance types the task fleet may use (Spot, price-capacity-optimized)."""
    core_capacity: int = 2
    """Core fleet target capacity, in instances."""
    task_spot_capacity: int = 2
    """Task fleet initial Spot capacity, in instances."""
    max_capacity: int = 20
    """Managed scaling's maximum core plus task instances (the primary node is not counted)."""
    idle_timeout_minutes: int = 60
    """Auto-termination after this long idle (both modes; a safety net for transient clusters)."""
    cluster_generation: int = 1
    """persistent only: raise it and deploy to replace the stack's cluster (after an idle auto-termination)."""
    ebs_volume_gib: int = 64
    """EBS volume per instance (encrypted through the security configuration)."""


@dataclass(frozen=True)
class BatchConfig:
    spot_instance_types: tuple[str, ...] = ("g5.xlarge", "g5.2xlarge", "g6.xlarge", "g6.2xlarge")
    """GPU instance types of the Spot compute environment (not p3 or g3: the GPU AMI, ECS_AL2023_NVIDIA, does not
    support them)."""
    on_demand_instance_types: tuple[str, ...] = ("g5.xlarge", "g5.2xlarge", "g5.12xlarge")
    """GPU instance types of the On-Demand compute environment (the Spot-first queue's fallback; not p3 or g3)."""
    max_vcpus_spot: int = 64
    """Upper bound of the Spot compute environment (its minimum is always 0)."""
    max_vcpus_on_demand: int = 96
    """Upper bound of the On-Demand compute environment (its minimum is always 0)."""
    max_vcpus_multinode: int = 96
    """Upper bound of the multi-node jobs' On-Demand compute environment (its minimum is always 0)."""
    training_gpus: int = 1
    """GPUs per single-node training job."""
    training_vcpus: int = 4
    """vCPUs per single-node training job."""
    training_memory_mib: int = 15_000
    """Memory per single-node training job."""
    multinode_instance_type: str = "g5.12xlarge"
    """Instance type of every node of a multi-node DDP job: the only type of its own On-Demand environment
    (not p3 or g3)."""
    multinode_nodes: int = 2
    """Nodes per multi-node DDP job."""
    multinode_gpus_per_node: int = 4
    """GPUs per node of a multi-node DDP job."""
    inference_gpus: int = 1
    """GPUs per batch inference job."""
    inference_vcpus: int = 4
    """vCPUs per batch inference job."""
    inference_memory_mib: int = 15_000
    """Memory per batch inference job."""
    job_timeout_minutes: int = 240
    """Timeout of every Batch job (Batch then stops it; the checkpoint on SIGTERM keeps the work)."""
    runnable_timeout_minutes: int = 240
    """A job that cannot start (no capacity, quota, resources no instance has) is cancelled after this long."""
    retry_attempts: int = 3
    """Attempts per job; only Spot reclaims (status reason `Host EC2*`) are retried."""
    workload_max_vcpus: int = 128
    """Most vCPUs that one workload's Batch jobs hold at once, across all its executions (a Batch consumable
    resource per workload: further jobs wait in RUNNABLE); every job shape must fit in it."""
    workload_vcpu_limits: Mapping[str, int] = field(default_factory=dict)
    """Per-workload overrides of `workload_max_vcpus`, by workload name."""
    share_decay_seconds: int = 3600
    """The fair-share policy's window: how long past usage counts against a workload's share (0 to 604800)."""
    dlc_pytorch_version: str = "2.8"
    """PyTorch version of the AWS Deep Learning Container that the images build on."""
    dlc_python_version: str = "py312"
    """Python version tag of that Deep Learning Container."""


@dataclass(frozen=True)
class GlueConfig:
    worker_type: Literal["G.1X", "G.2X", "G.4X", "G.8X"] = "G.1X"
    """Glue worker type of the clean job."""
    number_of_workers: int = 4
    """Glue workers of the clean job (at least 2)."""
    timeout_minutes: int = 120
    """Glue job timeout."""


@dataclass(frozen=True)
class PipelineConfig:
    max_candidates: int = 8
    """Most hyperparameter candidates one execution may train (1 to 64; synth fails above 22, where a run with
    the largest candidates the execution-input schema admits could exceed Step Functions' 256 KiB payload)."""
    map_max_concurrency: int = 4
    """Candidates trained at the same time."""
    execution_timeout_hours: int = 120
    """Timeout of one state-machine execution: the backstop, longer than a run whose every task takes its whole
    own timeout (a Batch job's: batch.retry_attempts x (runnable_timeout_minutes + job_timeout_minutes)), the
    training Map's rounds of pipeline.max_candidates included, plus the failure path; so that a stuck task fails
    through its Catch. A synth refuses a shorter one (the defaults need 107)."""
    lambda_memory_mib: int = 1024
    """Memory of each pipeline Lambda."""
    lambda_reserved_concurrency: int | None = None
    """Concurrent executions reserved for (and the ceiling of) each pipeline Lambda, so that a runaway fan-out
    cannot take the account's pool. Default: none reserved. Lambda refuses a reservation that leaves the account
    fewer than 100 unreserved (3 functions per workload reserve this much each), and a new account's quota may
    be lower than that."""
    notification_email: str = ""
    """If set, this address is subscribed to the failure and alarm topic (it must confirm)."""


@dataclass(frozen=True)
class MlpipeConfig:
    env: str
    """The environment's name (a key of `environments` in cdk.json)."""
    account: str | None = None
    """AWS account; default: CDK_DEFAULT_ACCOUNT (environment-agnostic templates when neither is set)."""
    region: str = "us-east-1"
    """AWS region; CDK_DEFAULT_REGION wins over this default, an explicit value wins over both."""
    stack_prefix: str = "Mlpipe"
    """Prefix of every stack name (the client finds the stacks by it), and, lowercased, of the Parameter Store
    names through which the stacks hand values to each other."""
    destroy_stateful: bool = False
    """Stateful resources (buckets, key, log groups, Glue database) are RETAINed unless this is true."""
    workloads: tuple[str, ...] = ()
    """The workload folders (each with a workload.toml), relative to cdk.json's folder; cdk.json's top-level
    `workloads` sets it for every environment."""
    log_retention_days: int = 30
    """Retention of the application log groups."""
    network: NetworkConfig = field(default_factory=NetworkConfig)
    emr: EmrConfig = field(default_factory=EmrConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    glue: GlueConfig = field(default_factory=GlueConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)

    def stack_name(self, concern: str) -> str:
        """`MlpipeDev-Network` for concern `Network` in environment `dev`."""
        return f"{self.stack_prefix}{self.env.title()}-{concern}"


def load_config(context: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> MlpipeConfig:
    """Build and validate the configuration of the environment that `context["env"]` names.

    `context` is the CDK context (cdk.json's `context` with `-c` overrides applied); `environ` supplies
    CDK_DEFAULT_ACCOUNT and CDK_DEFAULT_REGION (default: os.environ).
    """
    environ = os.environ if environ is None else environ
    env_name = context.get("env", "dev")
    environments = context.get("environments")
    if not isinstance(environments, Mapping):
        raise ConfigError("environments: cdk.json context must map environment names to their settings")
    if not isinstance(env_name, str) or env_name not in environments:
        known = ", ".join(sorted(environments))
        raise ConfigError(f"env: unknown environment {env_name!r} (known: {known})")
    raw = environments[env_name]
    if not isinstance(raw, Mapping):
        raise ConfigError(f"environments.{env_name}: expected an object, got {type(raw).__name__}")
    values = dict(raw)
    if "destroy_stateful" in context:
        values["destroy_stateful"] = _parse_flag(context["destroy_stateful"], "destroy_stateful")
    if "workloads" in context:
        if "workloads" in values:
            raise ConfigError(
                f"environments.{env_name}.workloads: set workloads once, at cdk.json's top level"
            )
        workloads = context["workloads"]
        if isinstance(workloads, str):  # `cdk synth -c workloads=examples/a,examples/b` gives a string
            workloads = [w for w in workloads.split(",") if w]
        values["workloads"] = workloads
    if values.get("account") is None and environ.get("CDK_DEFAULT_ACCOUNT"):
        values["account"] = environ["CDK_DEFAULT_ACCOUNT"]
    if "region" not in values and environ.get("CDK_DEFAULT_REGION"):
        values["region"] = environ["CDK_DEFAULT_REGION"]
    config: MlpipeConfig = build_dataclass(
        MlpipeConfig, {"env": env_name, **values}, f"environments.{env_name}"
    )
    _check(config, f"environments.{env_name}")
    return config


def _parse_flag(value: Any, key: str) -> bool:
    # `-c key=true` arrives as a string; cdk.json may hold a real boolean.
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ConfigError(f"{key}: expected true or false, got {value!r}")


def build_dataclass(cls: type[Any], data: Mapping[str, Any], path: str) -> Any:
    """`cls` built from `data` (nested dataclasses, tuples, literals, unions); ConfigError names the key."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get(NOT_A_KEY)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{path}.{unknown[0]}: unknown key (known: {', '.join(fields)})")
    for name, f in fields.items():
        if name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{path}.{name}: required key is missing")
    kwargs = {name: _coerce(hints[name], value, f"{path}.{name}") for name, value in data.items()}
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, path: str) -> Any:
    origin = get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected an object, got {json.dumps(value)}")
        return build_dataclass(hint, value, path)  # type: ignore[arg-type]
    if origin is Literal:
        if value not in get_args(hint):
            allowed = ", ".join(repr(a) for a in get_args(hint))
            raise ConfigError(f"{path}: {value!r} is not one of {allowed}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in get_args(hint):
            return None
        inner = [a for a in get_args(hint) if a is not type(None)]
        return _coerce(inner[0], value, path)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{path}: expected a list, got {json.dumps(value)}")
        (item_hint, _ellipsis) = get_args(hint)
        return tuple(_coerce(item_hint, v, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is Mapping or hint is Mapping:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected an object, got {json.dumps(value)}")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {json.dumps(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {json.dumps(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: expected a number, got {json.dumps(value)}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {json.dumps(value)}")
        return value
    raise TypeError(f"{path}: unsupported config type {hint!r}")  # a programming error, not a user's


def _check_workload_vcpus(batch: BatchConfig, path: str) -> None:
    """Each workload's vCPU cap must admit its largest job, or that job would wait in RUNNABLE forever."""
    node = GPU_INSTANCES[batch.multinode_instance_type]
    largest = max(batch.training_vcpus, batch.inference_vcpus, batch.multinode_nodes * (node.vcpus - 2))
    limits = {"workload_max_vcpus": batch.workload_max_vcpus}
    for name, limit in batch.workload_vcpu_limits.items():
        key = f"workload_vcpu_limits.{name}"
        _require(re.fullmatch(r"[a-z][a-z0-9-]{0,30}[a-z0-9]", name) is not None, f"{path}.batch.{key}",
                 "is not a workload name (2 to 32 lowercase letters, digits and '-')")  # fmt: skip
        _require(isinstance(limit, int) and not isinstance(limit, bool), f"{path}.batch.{key}",
                 f"expected an integer, got {json.dumps(limit)}")  # fmt: skip
        limits[key] = limit
    for key, limit in limits.items():
        _require(
            largest <= limit <= 100_000,
            f"{path}.batch.{key}",
            f"must be {largest} (the largest job's vCPUs) to 100000",
        )
    _require(
        0 <= batch.share_decay_seconds <= 604_800, f"{path}.batch.share_decay_seconds", "must be 0 to 604800"
    )


def undeployed_vcpu_limits(batch: BatchConfig, deployed: set[str]) -> list[str]:
    """Names in `workload_vcpu_limits` that no deployed workload has: a typo, or a workload that this synth
    leaves out (local mode synthesizes one workload at a time)."""
    return sorted(set(batch.workload_vcpu_limits) - deployed)


def workload_vcpu_limit(batch: BatchConfig, workload: str) -> int:
    """The vCPU cap of `workload`'s Batch jobs."""
    return int(batch.workload_vcpu_limits.get(workload, batch.workload_max_vcpus))


def _require(condition: bool, path: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{path}: {message}")


def _gpu_types(types_: tuple[str, ...], path: str) -> list[GpuInstance]:
    _require(len(types_) > 0, path, "needs at least one instance type")
    for i, name in enumerate(types_):
        _gpu_type(name, f"{path}[{i}]")
    return [GPU_INSTANCES[n] for n in types_]


def _gpu_type(name: str, path: str) -> None:
    _require(name in GPU_INSTANCES, path, f"{name!r} is not a known GPU instance type")
    _require(
        instance_family(name) not in FAMILIES_WITHOUT_GPU_IMAGE,
        path,
        f"{name!r} cannot run the compute environments' GPU AMI ({BATCH_GPU_IMAGE_TYPE} supports no "
        f"{'/'.join(FAMILIES_WITHOUT_GPU_IMAGE)} instance)",
    )


def _fits(instance: GpuInstance, gpus: int, vcpus: int, memory_mib: int) -> bool:
    usable_memory = instance.memory_mib * (1 - _ECS_RESERVED_MEMORY_FRACTION)
    return instance.gpus >= gpus and instance.vcpus >= vcpus and usable_memory >= memory_mib


def _check_job_fits(
    fleet: list[GpuInstance], fleet_key: str, job: str, gpus: int, vcpus: int, memory_mib: int, path: str
) -> None:
    if any(_fits(i, gpus, vcpus, memory_mib) for i in fleet):
        return
    largest = max(fleet, key=lambda i: (i.gpus, i.vcpus, i.memory_mib))
    raise ConfigError(
        f"{path}.batch.{job}_gpus: a {job} job asks for {gpus} GPU(s), {vcpus} vCPU(s) and {memory_mib} MiB, "
        f"which no type in batch.{fleet_key} can give (the largest, {largest.name}, has {largest.gpus} GPU(s), "
        f"{largest.vcpus} vCPUs and {largest.memory_mib} MiB)"
    )


def _check(config: MlpipeConfig, path: str) -> None:
    """Cross-field and range checks; each failure names its key."""
    _require(
        re.fullmatch(r"[a-z][a-z0-9]{0,15}", config.env) is not None,
        "env",
        "use 1-16 lowercase letters/digits",
    )
    _require(
        re.fullmatch(r"[A-Z][A-Za-z0-9]{0,19}", config.stack_prefix) is not None,
        f"{path}.stack_prefix",
        "use 1-20 letters/digits starting with a capital",
    )
    _require(  # it leads the Parameter Store names of the stacks' handoffs (stacks/constructs/handoff.py)
        not config.stack_prefix.lower().startswith(("aws", "ssm")),
        f"{path}.stack_prefix",
        "must not begin with aws or ssm: Parameter Store reserves those names",
    )
    if config.account is not None:
        _require(re.fullmatch(r"\d{12}", config.account) is not None, f"{path}.account", "must be 12 digits")
    _require(
        re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", config.region) is not None,
        f"{path}.region",
        f"{config.region!r} is not an AWS region name",
    )
    _require(
        config.log_retention_days in LOG_RETENTION_DAYS,
        f"{path}.log_retention_days",
        f"must be one of {LOG_RETENTION_DAYS}",
    )

    net = config.network
    _require(
        1 <= net.flow_log_retention_days <= 3653,
        f"{path}.network.flow_log_retention_days",
        "must be 1 to 3653",
    )
    _require(net.nat_gateways in (1, 2), f"{path}.network.nat_gateways", "must be 1 or 2")
    _require(
        re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}/(1[6-9]|2[0-2])", net.cidr) is not None,
        f"{path}.network.cidr",
        "must be an IPv4 CIDR block from /16 to /22",
    )

    emr = config.emr
    _require(
        re.fullmatch(r"emr-7\.\d+\.\d+", emr.release_label) is not None,
        f"{path}.emr.release_label",
        "must be an EMR 7.x release label such as emr-7.12.0",
    )
    for key in ("primary_instance_types", "core_instance_types", "task_instance_types"):
        types_ = getattr(emr, key)
        _require(0 < len(types_) <= 5, f"{path}.emr.{key}", "an instance fleet takes 1 to 5 instance types")
    _require(emr.core_capacity >= 1, f"{path}.emr.core_capacity", "must be at least 1")
    _require(emr.task_spot_capacity >= 0, f"{path}.emr.task_spot_capacity", "must not be negative")
    _require(
        emr.max_capacity >= emr.core_capacity + emr.task_spot_capacity,
        f"{path}.emr.max_capacity",
        "must cover the core and initial task capacity (managed scaling does not count the primary node)",
    )
    _require(
        10 <= emr.idle_timeout_minutes <= 7 * 24 * 60,
        f"{path}.emr.idle_timeout_minutes",
        "must be between 10 minutes and 7 days",
    )
    _require(emr.cluster_generation >= 1, f"{path}.emr.cluster_generation", "must be at least 1")
    _require(16 <= emr.ebs_volume_gib <= 16_384, f"{path}.emr.ebs_volume_gib", "must be 16 to 16384")

    batch = config.batch
    spot = _gpu_types(batch.spot_instance_types, f"{path}.batch.spot_instance_types")
    on_demand = _gpu_types(batch.on_demand_instance_types, f"{path}.batch.on_demand_instance_types")
    for key in ("training_gpus", "inference_gpus", "multinode_gpus_per_node"):
        _require(getattr(batch, key) >= 1, f"{path}.batch.{key}", "must be at least 1")
    for key in ("training_vcpus", "inference_vcpus", "retry_attempts"):
        _require(getattr(batch, key) >= 1, f"{path}.batch.{key}", "must be at least 1")
    _require(
        10 <= batch.runnable_timeout_minutes <= 24 * 60,
        f"{path}.batch.runnable_timeout_minutes",
        "must be 10 to 1440",
    )
    _require(batch.retry_attempts <= 10, f"{path}.batch.retry_attempts", "Batch allows at most 10 attempts")
    for key in ("training_memory_mib", "inference_memory_mib"):
        _require(getattr(batch, key) >= 1024, f"{path}.batch.{key}", "must be at least 1024")
    for fleet, fleet_key in ((spot, "spot_instance_types"), (on_demand, "on_demand_instance_types")):
        _check_job_fits(
            fleet,
            fleet_key,
            "training",
            batch.training_gpus,
            batch.training_vcpus,
            batch.training_memory_mib,
            path,
        )
        _check_job_fits(
            fleet,
            fleet_key,
            "inference",
            batch.inference_gpus,
            batch.inference_vcpus,
            batch.inference_memory_mib,
            path,
        )
    _gpu_type(batch.multinode_instance_type, f"{path}.batch.multinode_instance_type")
    node = GPU_INSTANCES[batch.multinode_instance_type]
    _require(
        batch.multinode_gpus_per_node <= node.gpus,
        f"{path}.batch.multinode_gpus_per_node",
        f"{batch.multinode_gpus_per_node} GPUs per node, but {node.name} has {node.gpus}",
    )
    _require(2 <= batch.multinode_nodes <= 16, f"{path}.batch.multinode_nodes", "must be 2 to 16")
    _require(
        batch.multinode_nodes * node.vcpus <= batch.max_vcpus_multinode,
        f"{path}.batch.max_vcpus_multinode",
        f"must hold a whole multi-node job ({batch.multinode_nodes} x {node.vcpus} vCPUs)",
    )
    _require(
        max(i.vcpus for i in spot) <= batch.max_vcpus_spot,
        f"{path}.batch.max_vcpus_spot",
        "must hold at least one instance of the largest Spot type",
    )
    _require(
        5 <= batch.job_timeout_minutes <= 14 * 24 * 60,
        f"{path}.batch.job_timeout_minutes",
        "must be between 5 minutes and 14 days",
    )
    _require(
        re.fullmatch(r"\d+\.\d+", batch.dlc_pytorch_version) is not None,
        f"{path}.batch.dlc_pytorch_version",
        "must look like 2.8",
    )
    _require(
        re.fullmatch(r"py3\d+", batch.dlc_python_version) is not None,
        f"{path}.batch.dlc_python_version",
        "must look like py312",
    )

    glue = config.glue
    _require(2 <= glue.number_of_workers <= 299, f"{path}.glue.number_of_workers", "must be 2 to 299")
    _require(1 <= glue.timeout_minutes <= 2880, f"{path}.glue.timeout_minutes", "must be 1 to 2880")

    _require(len(config.workloads) >= 1, "workloads", "list at least one workload folder in cdk.json")
    _check_workload_vcpus(batch, path)

    pipe = config.pipeline
    _require(1 <= pipe.max_candidates <= 64, f"{path}.pipeline.max_candidates", "must be 1 to 64")
    _require(
        1 <= pipe.map_max_concurrency <= pipe.max_candidates,
        f"{path}.pipeline.map_max_concurrency",
        "must be 1 to pipeline.max_candidates",
    )
    _require(
        1 <= pipe.execution_timeout_hours <= 24 * 7,
        f"{path}.pipeline.execution_timeout_hours",
        "must be 1 to 168",
    )
    _require(
        512 <= pipe.lambda_memory_mib <= 10_240, f"{path}.pipeline.lambda_memory_mib", "must be 512 to 10240"
    )
    _require(
        pipe.lambda_reserved_concurrency is None or pipe.lambda_reserved_concurrency >= 1,
        f"{path}.pipeline.lambda_reserved_concurrency",
        "must be at least 1 (0 would stop every invocation); leave it out to reserve none",
    )
    _require(
        pipe.notification_email == ""
        or re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", pipe.notification_email) is not None,
        f"{path}.pipeline.notification_email",
        "is not an email address",
    )
