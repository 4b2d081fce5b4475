"""The checks every synth runs: cdk-nag's AwsSolutions pack and CDK's own template validation.

CDK's template validation (its CloudFormationValidatePlugin, a WebAssembly engine that takes about a second of
CPU to build) runs in a node process of its own (stacks/cfn_validate.py, scripts/cfn-validate.js), which app.py
starts before it imports CDK: the engine is built on the other core while the app is created, not by the jsii
kernel (node, which serves the app's CDK calls one at a time) inside `app.synth()` while Python waits.
`TemplateValidation` registers that process as a validation plugin under CDK's plugin name, so CDK treats its
report as its own plugin's (findings are warnings unless the `@aws-cdk/core:validateAgainstDefaultRules` flag is
set), on an app created with `builtin_cloud_formation_validation=False` (else CDK would also build its default
engine). `cdk synth --no-validation` (CDK_VALIDATION=false) starts no process and registers none.

Meanwhile the kernel loads cdk-nag while Python imports CDK's service modules (`load_checks_while_importing`):
jsii talks to its kernel over one pipe without a lock, so nothing else may call into jsii until cdk-nag is
loaded; importing the modules in BINDINGS never does (tests/stacks/test_validation.py checks that, and that they
are all the CDK modules the stacks import).
"""

from __future__ import annotations

import importlib
import os
import threading
from typing import Any

import aws_cdk as cdk
import jsii

from stacks.cfn_validate import TemplateValidator

PLUGIN_NAME = "CloudFormation Validate"  # cdk.CloudFormationValidatePlugin.PLUGIN_NAME (a test checks)

# The aws_cdk service modules that stacks/ imports (and only those: each costs import time).
BINDINGS = (
    "aws_batch",
    "aws_cloudwatch",
    "aws_cloudwatch_actions",
    "aws_ec2",
    "aws_ecr_assets",
    "aws_ecs",
    "aws_emr",
    "aws_events",
    "aws_events_targets",
    "aws_glue",
    "aws_iam",
    "aws_kms",
    "aws_lambda",
    "aws_logs",
    "aws_s3",
    "aws_s3_assets",
    "aws_sagemaker",
    "aws_sns",
    "aws_sns_subscriptions",
    "aws_ssm",
    "aws_stepfunctions",
    "aws_stepfunctions_tasks",
)


def import_bindings() -> None:
    """Import the modules in BINDINGS: Python only, no call into the jsii kernel."""
    for name in BINDINGS:
        importlib.import_module(f"aws_cdk.{name}")


def load_checks_while_importing() -> None:
    """Import cdk-nag (the kernel loads its package) in a thread while this one runs `import_bindings()`
    (Python's own work), instead of one after the other."""
    failed: list[BaseException] = []

    def load() -> None:
        try:
            importlib.import_module("cdk_nag")
        except BaseException as error:  # re-raised in the calling thread, with its traceback
            failed.append(error)

    loader = threading.Thread(target=load, name="cdk-nag-load")
    loader.start()
    try:
        import_bindings()
    finally:
        loader.join()  # also on an import error: the kernel's pipe must be free again before anything else
    if failed:
        raise failed[0]


def _stack_templates(context: cdk.IPolicyValidationContext) -> list[dict[str, Any]]:
    """The context's templates as CloudFormationValidatePlugin reads them (paths absolute: the process may run
    in another working directory)."""
    return [
        {
            "stackConstructPath": t.stack_construct_path,
            "templatePath": os.path.abspath(t.template_path),
            "accountId": t.account_id,
            "region": t.region,
        }
        for t in context.stack_templates
    ]


@jsii.implements(cdk.IPolicyValidationPlugin)
class TemplateValidation:
    """CDK's CloudFormationValidatePlugin, run by `validator`'s process; its report is returned as it is.

    NagFirst, registered with it on the same app (add_checks), hands the templates over before cdk-nag runs;
    without it, `validate` does. A second synth of the app (`app.synth(force=True)`) gets a fresh process.
    """

    def __init__(self, validator: TemplateValidator) -> None:
        self._validator = validator
        self._handed_over = False
        self._version: str | None = None

    @property
    def name(self) -> str:
        return PLUGIN_NAME

    @property
    def version(self) -> str | None:
        return self._version

    @property
    def rule_ids(self) -> list[str] | None:
        return None

    def hand_over(self, context: cdk.IPolicyValidationContext) -> None:
        """Start validating the context's templates: the process works while the caller goes on."""
        if self._validator.started:
            self._validator = TemplateValidator()
        self._validator.start(_stack_templates(context))
        self._handed_over = True

    def validate(self, context: cdk.IPolicyValidationContext) -> cdk.PolicyValidationPluginReport:
        if not self._handed_over:
            self.hand_over(context)
        self._handed_over = False
        self._version, report = self._validator.report()
        return _report(report)


@jsii.implements(cdk.IPolicyValidationPlugin)
class NagFirst:
    """cdk-nag's pack as it is (its name, version, rules and report), except that its `validate` first hands the
    templates to the validation process: CDK runs the plugins one after the other, so the process validates
    while cdk-nag checks (in the kernel), and TemplateValidation, registered after this, collects its report."""

    def __init__(self, nag: cdk.IPolicyValidationPlugin, templates: TemplateValidation) -> None:
        self._nag = nag
        self._templates = templates

    @property
    def name(self) -> str:
        return self._nag.name

    @property
    def version(self) -> str | None:
        return self._nag.version

    @property
    def rule_ids(self) -> list[str] | None:
        return self._nag.rule_ids

    def validate(self, context: cdk.IPolicyValidationContext) -> cdk.PolicyValidationPluginReport:
        self._templates.hand_over(context)
        return self._nag.validate(context)


def _report(report: dict[str, Any]) -> cdk.PolicyValidationPluginReport:
    """The plugin's report (JSON, as CloudFormationValidatePlugin.validate returns it) as jsii structs."""
    return cdk.PolicyValidationPluginReport(
        success=report["success"],
        violations=[
            cdk.PolicyViolation(
                rule_name=v["ruleName"],
                description=v["description"],
                severity=v.get("severity"),
                fix=v.get("fix"),
                rule_metadata=v.get("ruleMetadata"),
                violating_resources=[
                    cdk.PolicyViolatingResource(
                        locations=r["locations"],
                        resource_logical_id=r.get("resourceLogicalId"),
                        construct_path=r.get("constructPath"),
                        template_path=r.get("templatePath"),
                    )
                    for r in v["violatingResources"]
                ],
            )
            for v in report["violations"]
        ],
    )


def add_checks(app: cdk.App, template_validation: TemplateValidator | None = None) -> None:
    """Register cdk-nag's AwsSolutions checks on `app`, and `template_validation`'s process for CDK's template
    validation if given (else CDK's default in-process instance validates, unless the app was created without
    it: one engine per kernel, shared by every app, which suits a test process)."""
    from cdk_nag import AwsSolutionsChecks

    nag = AwsSolutionsChecks(app)
    if template_validation is None:
        cdk.Validations.of(app).add_plugins(nag)
    else:
        templates = TemplateValidation(template_validation)
        cdk.Validations.of(app).add_plugins(NagFirst(nag, templates), templates)
