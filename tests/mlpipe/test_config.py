"""Configuration: defaults, and one clear message naming the key for every kind of bad value."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlpipe.config import ConfigError, load_config

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTEXT = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]


def context(env: str = "dev", **settings: Any) -> dict[str, Any]:
    ctx = copy.deepcopy(CONTEXT)
    ctx["env"] = env
    for key, value in settings.items():
        if isinstance(value, dict):
            ctx["environments"][env].setdefault(key, {}).update(value)
        else:
            ctx["environments"][env][key] = value
    return ctx


def test_defaults_and_environment_overrides() -> None:
    dev = load_config(context("dev"), environ={})
    prod = load_config(context("prod"), environ={})
    assert (dev.network.profile, dev.emr.mode, dev.destroy_stateful) == ("dev", "transient", False)
    assert (prod.network.profile, prod.network.nat_gateways, prod.glue.worker_type) == ("prod", 2, "G.2X")
    assert prod.stack_name("Batch") == "MlpipeProd-Batch"


def test_account_and_region_from_cdk_environment_unless_configured() -> None:
    env = {"CDK_DEFAULT_ACCOUNT": "123456789012", "CDK_DEFAULT_REGION": "eu-west-1"}
    assert (
        c := load_config(context("dev"), environ=env)
    ).account == "123456789012" and c.region == "eu-west-1"
    pinned = load_config(context("dev", region="us-west-2"), environ=env)
    assert pinned.region == "us-west-2"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"emr": {"mode": "always-on"}},
            "environments.dev.emr.mode: 'always-on' is not one of 'transient', 'persistent'",
        ),
        ({"emr": {"nodes": 3}}, "environments.dev.emr.nodes: unknown key"),
        ({"bogus": 1}, "environments.dev.bogus: unknown key"),
        ({"batch": {"training_gpus": "1"}}, "environments.dev.batch.training_gpus: expected an integer"),
        (
            {"batch": {"training_gpus": 8}},
            "environments.dev.batch.training_gpus: a training job asks for 8 GPU(s)",
        ),
        (
            {"batch": {"multinode_gpus_per_node": 8}},
            "environments.dev.batch.multinode_gpus_per_node: 8 GPUs per node, but g5.12xlarge has 4",
        ),
        (
            {"batch": {"multinode_instance_type": "m5.large"}},
            "environments.dev.batch.multinode_instance_type",
        ),
        (
            {"batch": {"spot_instance_types": ["m5.large"]}},
            "environments.dev.batch.spot_instance_types[0]: 'm5.large' is not a known GPU instance type",
        ),
        # AWS Batch's Ec2Configuration: "ECS_AL2023_NVIDIA doesn't support p3 and g3 instance types"
        (
            {"batch": {"on_demand_instance_types": ["g5.12xlarge", "p3.8xlarge"]}},
            "environments.dev.batch.on_demand_instance_types[1]: 'p3.8xlarge' cannot run the compute "
            "environments' GPU AMI (ECS_AL2023_NVIDIA supports no p3/p3dn/g3/g3s instance)",
        ),
        (
            {"batch": {"multinode_instance_type": "p3.16xlarge"}},
            "environments.dev.batch.multinode_instance_type: 'p3.16xlarge' cannot run",
        ),
        # Parameter Store: "A parameter name can't be prefixed with "aws" or "ssm" (case-insensitive)."
        ({"stack_prefix": "Ssmpipe"}, "environments.dev.stack_prefix: must not begin with aws or ssm"),
        ({"network": {"profile": "staging"}}, "environments.dev.network.profile"),
        ({"log_retention_days": 31}, "environments.dev.log_retention_days: must be one of"),
        ({"emr": {"release_label": "emr-6.15.0"}}, "environments.dev.emr.release_label"),
        ({"pipeline": {"max_candidates": 100}}, "environments.dev.pipeline.max_candidates"),
        (
            {"pipeline": {"lambda_reserved_concurrency": 0}},
            "environments.dev.pipeline.lambda_reserved_concurrency: must be at least 1 (0 would stop every",
        ),
        ({"account": "12345"}, "environments.dev.account: must be 12 digits"),
        # two g5.12xlarge nodes of 46 vCPUs: a cap below 92 would keep a multi-node job RUNNABLE for ever
        (
            {"batch": {"workload_max_vcpus": 91}},
            "environments.dev.batch.workload_max_vcpus: must be 92 (the largest job's vCPUs) to 100000",
        ),
        (
            {"batch": {"workload_vcpu_limits": {"churn": 8}}},
            "environments.dev.batch.workload_vcpu_limits.churn: must be 92",
        ),
        (
            {"batch": {"workload_vcpu_limits": {"Churn!": 128}}},
            "environments.dev.batch.workload_vcpu_limits.Churn!: is not a workload name",
        ),
        (
            {"batch": {"workload_vcpu_limits": {"churn": "lots"}}},
            'environments.dev.batch.workload_vcpu_limits.churn: expected an integer, got "lots"',
        ),
        ({"batch": {"share_decay_seconds": 604_801}}, "environments.dev.batch.share_decay_seconds"),
    ],
)
def test_bad_values_name_their_key(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(context("dev", **settings), environ={})
    assert str(error.value).startswith(message), str(error.value)


def test_unknown_environment_and_destroy_flag() -> None:
    with pytest.raises(ConfigError, match=r"env: unknown environment 'qa' \(known: dev, prod\)"):
        load_config({**context("dev"), "env": "qa"}, environ={})
    assert load_config({**context("dev"), "destroy_stateful": "true"}, environ={}).destroy_stateful is True
    with pytest.raises(ConfigError, match="destroy_stateful: expected true or false"):
        load_config({**context("dev"), "destroy_stateful": "yes"}, environ={})


def test_app_fails_synth_with_one_line_naming_the_key(tmp_path: Path) -> None:
    bad = context("dev", batch={"training_gpus": 16})
    env = {**os.environ, "CDK_CONTEXT_JSON": json.dumps(bad), "CDK_OUTDIR": str(tmp_path / "out")}
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "app.py")], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip().splitlines() == [result.stderr.strip().splitlines()[0]]
        and "environments.dev.batch.training_gpus" in result.stderr
    )
    assert not list(tmp_path.rglob("*.template.json"))  # no stack was synthesized


def test_app_fails_synth_with_one_line_naming_a_bad_workloads_key(tmp_path: Path) -> None:
    workload = tmp_path / "w"
    shutil.copytree(REPO_ROOT / "examples" / "clickstream", workload)
    toml = workload / "workload.toml"
    toml.write_text(toml.read_text().replace('direction = "maximize"\n', ""))
    bad = {**context("dev"), "workloads": [str(workload)]}
    env = {**os.environ, "CDK_CONTEXT_JSON": json.dumps(bad), "CDK_OUTDIR": str(tmp_path / "out")}
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "app.py")], env=env, capture_output=True, text=True, timeout=120
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0] == (
        f"mlpipe: invalid workload: workloads[0] ({workload}): workload.toml: metric.direction: required key is missing"
    )
    assert not list(tmp_path.rglob("*.template.json"))


def test_workloads_are_listed_once_at_the_top_level() -> None:
    with pytest.raises(ConfigError, match=r"^workloads: list at least one workload folder"):
        load_config({**context("dev"), "workloads": []}, environ={})
    with pytest.raises(ConfigError, match=r"^environments\.dev\.workloads: set workloads once"):
        load_config(context("dev", workloads=["a"]), environ={})


def test_a_vcpu_limit_for_a_workload_the_app_does_not_deploy_is_named() -> None:
    """Not an error (local mode synthesizes one of cdk.json's workloads at a time); app.py prints a note."""
    from mlpipe.config import undeployed_vcpu_limits, workload_vcpu_limit

    config = load_config(
        context("dev", batch={"workload_vcpu_limits": {"regresion": 100, "churn": 200}}), environ={}
    )
    assert undeployed_vcpu_limits(config.batch, {"churn", "clickstream"}) == ["regresion"]
    assert workload_vcpu_limit(config.batch, "churn") == 200
    assert workload_vcpu_limit(config.batch, "clickstream") == 128  # batch.workload_max_vcpus
