"""The synth's checks: CDK's validation engine built while the bindings import, and registered on the app."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stacks import validation

pytestmark = pytest.mark.xdist_group("cdk")
REPO_ROOT = Path(__file__).resolve().parents[2]
Fresh = tuple[dict[str, Any], dict[str, Any]]  # what the fresh process printed, and its validation report

# Runs in a fresh interpreter (this one has imported everything already). It records every request to the jsii
# kernel, builds the engine as app.py does, then synthesizes a one-bucket app whose template CloudFormation
# would reject, with the checks that app.py registers.
_FRESH_PROCESS = """
import json, sys
from jsii._kernel.providers import process

requests = []  # (kind, method, the jsii objects among its arguments)
send = process._NodeProcess.send

def recording_send(self, request, response_type):
    objects = [getattr(a, "__jsii_ref__", None) for a in getattr(request, "args", None) or []]
    requests.append((type(request).__name__, getattr(request, "method", None), [o and o.ref for o in objects]))
    return send(self, request, response_type)

process._NodeProcess.send = recording_send

import aws_cdk as cdk
from stacks import validation

before = len(requests)
validation.import_bindings()
during_import = [kind for kind, _, _ in requests[before:]]
cdk_modules = {m for m in sys.modules if m.startswith("aws_cdk.")}
import stacks.platform
imported_later = sorted({m for m in sys.modules if m.startswith("aws_cdk.")} - cdk_modules)

engine = validation.build_engine_while_importing()
app = cdk.App(outdir=sys.argv[1])
cdk.CfnResource(cdk.Stack(app, "S"), "Bucket", type="AWS::S3::Bucket", properties={"BucketName": "Not_Valid"})
validation.add_checks(app, engine)
registered = [refs for kind, method, refs in requests if method == "addPlugins"]
app.synth()
print(json.dumps({"during_import": during_import, "imported_later": imported_later,
                  "engine": engine.__jsii_ref__.ref, "registered": registered}))
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


def test_importing_the_bindings_never_calls_the_kernel(fresh: Fresh) -> None:
    # The engine is built on the kernel's one pipe meanwhile: a request from the importing thread would
    # interleave with it.
    printed, _ = fresh
    assert printed["during_import"] == []


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


def test_the_explicit_engine_validates_once_in_place_of_cdks_default(fresh: Fresh) -> None:
    printed, report = fresh
    [plugins] = printed["registered"]  # one addPlugins call: cdk-nag's pack and the engine built early
    assert len(plugins) == 2 and plugins[1] == printed["engine"]
    cfn = [r for r in report["pluginReports"] if r["pluginName"] == "CloudFormation Validate"]
    assert len(cfn) == 1  # CDK's default instance did not run as well
    findings = [v["description"] for v in cfn[0]["violations"]]
    assert any("BucketName" in f and "Not_Valid" in f for f in findings), findings


def test_no_engine_when_validation_is_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDK_VALIDATION", "false")  # what `cdk synth --no-validation` sets for the app
    assert validation.build_engine_while_importing() is None
