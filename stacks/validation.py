"""The checks every synth runs: cdk-nag's AwsSolutions pack and CDK's own template validation.

CDK validates every template with its CloudFormationValidatePlugin, a WebAssembly engine that takes about 0.9 s
of the jsii kernel's (node's) CPU to build (on scripts/jsii-node). By default CDK builds it inside
`app.synth()`, while Python waits; Python, for its part, spends about 0.5 s importing the service modules of
CDK's bindings while node waits. `build_engine_while_importing()` overlaps the two: a thread asks the kernel
for the engine and waits on the kernel's pipe (which releases the GIL) while the calling thread imports the
modules in BINDINGS (0.3 to 0.45 s saved per synth, README "Performance"). Registered on the app, that engine
replaces CDK's default instance with the same rules (aws_cdk's README, "CloudFormationValidatePlugin");
`cdk synth --no-validation` (CDK_VALIDATION=false) still turns it off. An app created with
`builtin_cloud_formation_validation=False` should not be given one (this project's apps are not).

jsii talks to its kernel over one pipe without a lock, so nothing else may call into jsii until the engine is
back; importing the modules in BINDINGS never does (tests/stacks/test_validation.py checks that, and that they
are all the CDK modules the stacks import).
"""

from __future__ import annotations

import importlib
import os
import threading

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

# The aws_cdk service modules that stacks/ imports (and only those: each costs import time).
BINDINGS = (
    "aws_batch",
    "aws_cloudwatch",
    "aws_cloudwatch_actions",
    "aws_ec2",
    "aws_ecr_assets",
    "aws_ecs",
    "aws_emr",
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
    "aws_stepfunctions",
    "aws_stepfunctions_tasks",
)


def import_bindings() -> None:
    """Import the modules in BINDINGS: Python only, no call into the jsii kernel."""
    for name in BINDINGS:
        importlib.import_module(f"aws_cdk.{name}")


def build_engine_while_importing() -> cdk.CloudFormationValidatePlugin | None:
    """CDK's template-validation engine, built by the kernel while this thread runs `import_bindings()`.

    None when validation is turned off (`cdk synth --no-validation`): the bindings are imported all the same.
    """
    if os.environ.get("CDK_VALIDATION") == "false":
        import_bindings()
        return None
    built: list[cdk.CloudFormationValidatePlugin] = []
    failed: list[BaseException] = []

    def build() -> None:
        try:
            built.append(cdk.CloudFormationValidatePlugin())
        except BaseException as error:  # re-raised in the calling thread, with its traceback
            failed.append(error)

    builder = threading.Thread(target=build, name="cdk-validation-engine")
    builder.start()
    try:
        import_bindings()
    finally:
        builder.join()  # also on an import error: the kernel's pipe must be free again before anything else
    if failed:
        raise failed[0]
    return built[0]


def add_checks(app: cdk.App, engine: cdk.CloudFormationValidatePlugin | None = None) -> None:
    """Register cdk-nag's AwsSolutions checks on `app`, and `engine` for CDK's template validation if given
    (CDK's default instance otherwise: one per kernel, shared by every app, which suits a test process)."""
    plugins: list[cdk.IPolicyValidationPlugin] = [AwsSolutionsChecks(app)]
    if engine is not None:
        plugins.append(engine)
    cdk.Validations.of(app).add_plugins(*plugins)
