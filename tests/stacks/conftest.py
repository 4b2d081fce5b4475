"""The app synthesized once per configuration per test run, with cdk-nag registered as in app.py: dev by the
CDK CLI (the `dev_cloud_assembly` that every test group shares), the other configurations in process."""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
os.environ["PATH"] = f"{REPO_ROOT / 'node_modules' / '.bin'}{os.pathsep}{os.environ['PATH']}"

SHARED = ("Storage", "Network", "Emr", "Batch", "Monitoring")


def cdk_context(env: str = "dev", **overrides: Any) -> dict[str, Any]:
    """cdk.json's context for `env`, with `overrides` merged into that environment's settings."""
    context = copy.deepcopy(json.loads((REPO_ROOT / "cdk.json").read_text())["context"])
    context["env"] = env
    settings = context["environments"][env]
    for section, values in overrides.items():
        if isinstance(values, dict):
            settings.setdefault(section, {}).update(values)
        else:
            settings[section] = values
    return context


@dataclass
class Synth:
    """One synthesized app: its templates by concern, and where the cloud assembly lies."""

    templates: dict[str, Any]  # concern -> aws_cdk.assertions.Template
    outdir: Path
    config: Any

    def template(self, concern: str) -> Any:
        return self.templates[concern]

    @property
    def workload(self) -> str:
        """The concern of the (first) workload's pipeline stack: `Workload-clickstream` in the dev app."""
        return next(c for c in self.templates if c.startswith("Workload-"))

    def path(self, concern: str) -> Path:
        """The template file that the synth wrote for `concern`."""
        return self.outdir / f"{self.config.stack_name(concern)}.template.json"

    def json(self, concern: str) -> dict[str, Any]:
        return json.loads(self.path(concern).read_text())

    def handed_over(self, concern: str, value: Any) -> tuple[str, Any]:
        """The stack that hands `value` (a `{"Ref": <parameter>}` of `concern`'s template) over through
        Parameter Store (stacks/constructs/handoff.py), and the value it stores there."""
        name = self.json(concern)["Parameters"][value["Ref"]]["Default"]
        for producer in self.templates:
            for resource in self.json(producer)["Resources"].values():
                if resource["Type"] == "AWS::SSM::Parameter" and resource["Properties"]["Name"] == name:
                    return producer, resource["Properties"]["Value"]
        raise AssertionError(f"no stack stores {name}, which {concern} reads")


def synthesize(context: dict[str, Any], outdir: Path) -> Synth:
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    from mlpipe.config import load_config
    from mlpipe.workload import load_all
    from stacks.platform import create_platform
    from stacks.validation import add_checks

    # No metadata stack traces: they cost time and show the jsii kernel's JavaScript, never the Python that
    # created a construct (the CDK CLI 2.1148 does not turn them off; app.py's synth records them).
    app = cdk.App(context={**context, "aws:cdk:disable-stack-trace": True}, outdir=str(outdir))
    config = load_config(context, environ={})
    platform = create_platform(app, config, workloads=load_all(config.workloads, REPO_ROOT))
    add_checks(app)  # CDK's default validation engine: one per kernel, shared by this process's synths
    app.synth()  # raises if cdk-nag finds an unacknowledged violation
    concerns = [*SHARED[:4], *(f"Workload-{w}" for w in platform.workloads), SHARED[4]]
    templates = {c: Template.from_stack(s) for c, s in zip(concerns, platform.stacks(), strict=True)}
    return Synth(templates=templates, outdir=outdir, config=config)


def from_cloud_assembly(context: dict[str, Any], outdir: Path) -> Synth:
    """The templates of an app that `cdk synth` wrote to `outdir` with `context`."""
    from aws_cdk.assertions import Template

    from mlpipe.config import load_config

    synth = Synth(templates={}, outdir=outdir, config=load_config(context, environ={}))
    prefix = synth.config.stack_name("")
    workloads = sorted(
        p.name[len(prefix) : -len(".template.json")] for p in outdir.glob(f"{prefix}Workload-*.template.json")
    )
    synth.templates.update({c: Template.from_json(synth.json(c)) for c in (*SHARED, *workloads)})
    return synth


@pytest.fixture(scope="session")
def dev(dev_cloud_assembly: Path) -> Synth:
    """The default: dev network profile, transient EMR (the test run's one dev synth, by the CDK CLI)."""
    return from_cloud_assembly(cdk_context("dev"), dev_cloud_assembly)


@pytest.fixture(scope="session")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """prod network profile with a persistent EMR cluster and Lambda concurrency reserved."""
    context = cdk_context("prod", emr={"mode": "persistent"}, pipeline={"lambda_reserved_concurrency": 5})
    return synthesize(context, tmp_path_factory.mktemp("cdk-prod"))


REGRESSION_DOCKERFILE = "FROM mlpipe\nCOPY extra-requirements.txt /opt/extra/\n"


@pytest.fixture(scope="session")
def both(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """dev with both examples deployed side by side; the regression one under a vCPU cap of its own, and (a
    copy of it) with a Dockerfile of its own."""
    import shutil

    regression = tmp_path_factory.mktemp("workloads") / "regression"
    shutil.copytree(REPO_ROOT / "examples" / "regression", regression,
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    (regression / "Dockerfile").write_text(REGRESSION_DOCKERFILE)
    (regression / "extra-requirements.txt").write_text("# the workload's own packages\n")
    manifest = regression / "workload.toml"
    manifest.write_text(manifest.read_text().replace('[train]\nentrypoint = "train.py"',
                                                     '[train]\nentrypoint = "train.py"\ndockerfile = "Dockerfile"'))  # fmt: skip
    context = cdk_context("dev", batch={"workload_vcpu_limits": {"regression": 100}})
    context["workloads"] = ["examples/clickstream", str(regression)]
    return synthesize(context, tmp_path_factory.mktemp("cdk-both"))


@pytest.fixture(scope="session")
def regression_dockerfile() -> str:
    """The Dockerfile that `both` gives its copy of the regression example."""
    return REGRESSION_DOCKERFILE


@pytest.fixture(scope="session")
def context_for() -> Any:
    """`cdk_context` as a fixture, for tests that synthesize a configuration of their own."""
    return cdk_context
