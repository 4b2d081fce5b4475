"""The synth's checks as app.py registers them: cdk-nag in the kernel (loaded while the bindings import), and
CDK's template validation in a process of its own (stacks/cfn_validate.py)."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stacks import cfn_validate, validation

pytestmark = pytest.mark.xdist_group("cdk")
REPO_ROOT = Path(__file__).resolve().parents[2]
Fresh = tuple[dict[str, Any], dict[str, Any]]  # what the fresh process printed, and its validation report

# Runs in a fresh interpreter (this one has imported everything already), in app.py's order. It records every
# request to the jsii kernel with the thread that sent it, then synthesizes a one-stack app with a bucket that
# cdk-nag rejects and a template that CloudFormation would reject, with the checks that app.py registers.
_FRESH_PROCESS = """
import json, sys, threading
from jsii._kernel.providers import process

requests = []  # (thread, kind, method)
send = process._NodeProcess.send

def recording_send(self, request, response_type):
    requests.append((threading.current_thread().name, type(request).__name__, getattr(request, "method", None)))
    return send(self, request, response_type)

process._NodeProcess.send = recording_send

from stacks.cfn_validate import start_template_validation
validator = start_template_validation()
import aws_cdk as cdk
from stacks import validation

before = len(requests)
validation.load_checks_while_importing()
during_import = requests[before:]
cdk_modules = {m for m in sys.modules if m.startswith("aws_cdk.")}
import stacks.platform
imported_later = sorted({m for m in sys.modules if m.startswith("aws_cdk.")} - cdk_modules)
from aws_cdk import aws_s3 as s3

app = cdk.App(outdir=sys.argv[1], builtin_cloud_formation_validation=False)
stack = cdk.Stack(app, "S")
s3.Bucket(stack, "Unlogged")  # cdk-nag: no server access logs, no TLS-only policy
cdk.CfnResource(stack, "Bucket", type="AWS::S3::Bucket", properties={"BucketName": "Not_Valid"})
validation.add_checks(app, validator)
try:
    app.synth()
    error = None
except Exception as e:
    error = str(e)
print(json.dumps({"during_import": during_import, "imported_later": imported_later, "error": error,
                  "validated": validator.started}))
"""


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Fresh:
    outdir = tmp_path_factory.mktemp("validation") / "cdk.out"
    env = {k: v for k, v in os.environ.items() if k not in ("CDK_VALIDATION", "CDK_CONTEXT_JSON")}
    result = subprocess.run(
        [sys.executable, "-c", _FRESH_PROCESS, str(outdir)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((outdir / "validation-report.json").read_text())
    return json.loads(result.stdout.strip().splitlines()[-1]), report


def test_only_the_loader_thread_calls_the_kernel_while_the_bindings_import(fresh: Fresh) -> None:
    # The kernel has one pipe and no lock: a request from the importing thread would interleave with cdk-nag's.
    printed, _ = fresh
    threads = {thread for thread, _, _ in printed["during_import"]}
    assert threads == {"cdk-nag-load"}, printed["during_import"]


def test_the_bindings_are_every_cdk_module_the_stacks_import(fresh: Fresh) -> None:
    printed, _ = fresh
    assert printed["imported_later"] == []  # none missing: stacks/ imported nothing new after the bindings
    imported: set[str] = set()
    for path in (REPO_ROOT / "stacks").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "aws_cdk":
                imported |= {a.name for a in node.names if a.name.startswith("aws_")}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("aws_cdk.aws_"):
                imported.add(node.module.split(".")[1])
    assert sorted(validation.BINDINGS) == sorted(imported)  # none to spare either


def test_cdk_nag_fails_the_synth_and_the_process_reports_the_template_findings(fresh: Fresh) -> None:
    printed, report = fresh
    assert printed["validated"] is True
    assert printed["error"] is not None and "AwsSolutions-S1" in printed["error"]
    plugins = {r["pluginName"]: r for r in report["pluginReports"]}
    nag_rules = {v["ruleName"] for v in plugins["AwsSolutions"]["violations"]}
    assert {"AwsSolutions-S1", "AwsSolutions-S10"} <= nag_rules
    # CDK's template validation ran once, in the process (CDK's default instance would be a second report)
    cfn = [r for r in report["pluginReports"] if r["pluginName"] == validation.PLUGIN_NAME]
    assert len(cfn) == 1
    findings = [v["description"] for v in cfn[0]["violations"]]
    assert any("BucketName" in f and "Not_Valid" in f for f in findings), findings


def _cfn_report(outdir: Path) -> list[dict[str, Any]]:
    report = json.loads((outdir / "validation-report.json").read_text())
    (cfn,) = [r for r in report["pluginReports"] if r["pluginName"] == validation.PLUGIN_NAME]
    return sorted(cfn["violations"], key=json.dumps)


def test_the_process_reports_what_cdks_own_plugin_reports(tmp_path: Path) -> None:
    """The same templates, validated in this process's kernel by CDK's plugin and by the validation process."""
    import aws_cdk as cdk

    def synth(outdir: Path, validator: cfn_validate.TemplateValidator | None) -> None:
        app = cdk.App(outdir=str(outdir), builtin_cloud_formation_validation=validator is None)
        for name in ("One", "Two"):
            stack = cdk.Stack(app, name, env=cdk.Environment(account="123456789012", region="us-east-1"))
            cdk.CfnResource(stack, "Bucket", type="AWS::S3::Bucket", properties={"BucketName": "Not_Valid"})
            cdk.CfnResource(stack, "Queue", type="AWS::SQS::Queue", properties={"DelaySeconds": 9999})
        if validator is not None:
            cdk.Validations.of(app).add_plugins(validation.TemplateValidation(validator))
        app.synth()

    synth(tmp_path / "in-kernel", None)
    validator = cfn_validate.TemplateValidator()
    synth(tmp_path / "in-process", validator)
    expected = _cfn_report(tmp_path / "in-kernel")
    assert len(expected) >= 2  # both findings, each on both stacks' templates
    assert _cfn_report(tmp_path / "in-process") == expected


def test_the_engine_is_the_python_packages_aws_cdk_lib(monkeypatch: pytest.MonkeyPatch) -> None:
    import aws_cdk as cdk

    engine = json.loads(cfn_validate.ENGINE_PACKAGE.read_text())["version"]
    assert (
        engine == importlib.metadata.version("aws-cdk-lib") == cfn_validate.kernel_version()
    )  # package.json
    assert validation.PLUGIN_NAME == cdk.CloudFormationValidatePlugin.PLUGIN_NAME
    # another version does not start (app.py then has CDK validate in the kernel, with a note)
    monkeypatch.setattr(cfn_validate, "kernel_version", lambda: "2.0.0")
    with pytest.raises(
        cfn_validate.TemplateValidationError, match=f"is {engine}, the Python package's is 2.0.0"
    ):
        cfn_validate.TemplateValidator()


def test_a_second_synth_of_the_app_is_validated_again(tmp_path: Path) -> None:
    import aws_cdk as cdk

    app = cdk.App(outdir=str(tmp_path), builtin_cloud_formation_validation=False)
    stack = cdk.Stack(app, "S")
    cdk.CfnResource(stack, "Bucket", type="AWS::S3::Bucket", properties={"BucketName": "Not_Valid"})
    validation.add_checks(app, cfn_validate.TemplateValidator())
    app.synth()
    first = _cfn_report(tmp_path)
    (tmp_path / "validation-report.json").unlink()
    app.synth(force=True)  # a fresh process: the first one has reported
    assert _cfn_report(tmp_path) == first and first


def test_a_failing_process_fails_with_its_error(tmp_path: Path) -> None:
    validator = cfn_validate.TemplateValidator()
    missing = tmp_path / "missing.template.json"
    validator.start([{"stackConstructPath": "S", "templatePath": str(missing)}])
    with pytest.raises(cfn_validate.TemplateValidationError, match=r"missing\.template\.json"):
        validator.report()


def test_an_unused_process_is_stopped() -> None:
    validator = cfn_validate.TemplateValidator()
    validator.close()
    assert validator._process.poll() is not None


def test_no_process_when_validation_is_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDK_VALIDATION", "false")  # what `cdk synth --no-validation` sets for the app
    assert cfn_validate.start_template_validation() is None
