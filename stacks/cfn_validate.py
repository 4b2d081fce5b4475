"""CDK's CloudFormation template validation in a node process of its own (scripts/cfn-validate.js).

CDK validates every template with its CloudFormationValidatePlugin, a WebAssembly engine that takes about a
second of CPU to build. In-process, the jsii kernel (node, which serves every CDK call of the app one at a
time) builds it inside `app.synth()` while Python waits. app.py instead starts this process first: it builds
the same plugin, from the same aws-cdk-lib version (package.json pins it to the Python package's; a test checks),
on the machine's other core while the app is created, and validates the templates when the synth hands them
over (stacks/validation.py registers it as a validation plugin).

Only the standard library here: app.py starts the process before it imports CDK.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "cfn-validate.js"
NODE = ROOT / "scripts" / "jsii-node"  # the project's Node 24, with the V8 settings that suit the engine
ENGINE_PACKAGE = ROOT / "node_modules" / "aws-cdk-lib" / "package.json"

# A synth validates a handful of templates in well under a second; this bounds a stuck engine, not a slow one.
TIMEOUT_S = 300


class TemplateValidationError(RuntimeError):
    """The validation process cannot start, or failed. A failure is reported as the plugin's; it fails the synth
    because cdk.json sets `@aws-cdk/core:validateAgainstDefaultRules` (without it CDK reports findings and
    failures of its template validation as warnings)."""


def kernel_version() -> str | None:
    """The aws-cdk-lib version that jsii's kernel runs: the Python package's bundled tarball (found without
    importing the package, which would start the kernel)."""
    spec = importlib.util.find_spec("aws_cdk")
    if spec is None or spec.origin is None:
        return None
    tarballs = sorted((Path(spec.origin).parent / "_jsii").glob("aws-cdk-lib@*.jsii.tgz"))
    return tarballs[0].name.removeprefix("aws-cdk-lib@").removesuffix(".jsii.tgz") if tarballs else None


class TemplateValidator:
    """The validation process, started at once: `start` hands it the templates, `report` waits for its report."""

    def __init__(self) -> None:
        if not ENGINE_PACKAGE.is_file():
            raise TemplateValidationError(f"{ENGINE_PACKAGE.parent} is missing (`make setup` installs it)")
        engine, kernel = json.loads(ENGINE_PACKAGE.read_text())["version"], kernel_version()
        if engine != kernel:
            raise TemplateValidationError(
                f"{ENGINE_PACKAGE.parent} is {engine}, the Python package's is {kernel} (`make setup` aligns them)"
            )
        self._process = subprocess.Popen(
            [str(NODE), str(SCRIPT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self._started = False
        atexit.register(self.close)  # a synth that fails or ends before validating leaves no process behind

    @property
    def started(self) -> bool:
        return self._started

    def start(self, stack_templates: list[dict[str, Any]]) -> None:
        """Hand the process `stack_templates` (CDK's IPolicyValidationContext entries: stackConstructPath,
        templatePath, accountId, region); it validates them while the caller goes on."""
        if self._started:
            raise TemplateValidationError("the validation process validates one synth's templates, once")
        self._started = True
        stdin, self._process.stdin = self._process.stdin, None  # closed here: communicate() must not flush it
        assert stdin is not None
        try:
            with stdin:
                stdin.write(json.dumps({"stackTemplates": stack_templates}).encode())
        except BrokenPipeError:
            pass  # the process has ended: report() says why

    def report(self) -> tuple[str, dict[str, Any]]:
        """The plugin's version and its report on the templates given to `start`."""
        try:
            out, err = self._process.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.close()
            raise TemplateValidationError(f"{SCRIPT.name} gave no report within {TIMEOUT_S} s") from None
        if self._process.returncode != 0:
            raise TemplateValidationError(
                f"{SCRIPT.name} failed (exit {self._process.returncode}): {err.decode(errors='replace')[-2000:]}"
            )
        reply = json.loads(out)
        return reply["version"], reply["report"]

    def close(self) -> None:
        """Stop the process if it is still running (a synth that failed or ended before validating)."""
        if self._process.poll() is None:
            self._process.kill()
            self._process.communicate()


def start_template_validation() -> TemplateValidator | None:
    """The validation process, started now; None when validation is turned off (`cdk synth --no-validation`).
    TemplateValidationError when it cannot start (aws-cdk-lib's JavaScript missing, or another version)."""
    if os.environ.get("CDK_VALIDATION") == "false":
        return None
    return TemplateValidator()
