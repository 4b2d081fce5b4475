#!/usr/bin/env python3
"""The mlpipe CDK app: load the environment's config, create the stacks, add the checks, synthesize."""

from __future__ import annotations

import gc
import json
import os
import sys
from pathlib import Path

# A synth is a short-lived process whose objects (CDK's generated bindings, jsii proxies) all live until it
# exits: the cyclic collector would only walk them, so it stays off; see also the end of main().
gc.disable()

# jsii runs on the Node 24 LTS that package.json installs (the machine's Node may be end-of-life).
APP_DIR = Path(__file__).resolve().parent  # cdk.json's folder: workload paths are relative to it
_NODE_BIN = APP_DIR / "node_modules" / ".bin"
if _NODE_BIN.is_dir():
    os.environ["PATH"] = f"{_NODE_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
# ... with V8 settings that make every synth faster (scripts/jsii-node says which and why).
os.environ.setdefault("JSII_NODE", str(APP_DIR / "scripts" / "jsii-node"))

from mlpipe.config import ConfigError, MlpipeConfig, load_config, undeployed_vcpu_limits  # noqa: E402
from mlpipe.workload import WorkloadError, load_all  # noqa: E402
from stacks.cfn_validate import (  # noqa: E402
    TemplateValidationError,
    TemplateValidator,
    start_template_validation,
)
from stacks.dlc_image import prefetch_dlc_image  # noqa: E402

CONTEXT_KEYS = ("env", "workloads", "environments", "destroy_stateful")


def _early_config() -> MlpipeConfig | None:
    """The config from the context that the CLI passes in this variable, read before jsii starts; None if there
    is no context here or a bad one (main() reports that)."""
    try:
        return load_config(json.loads(os.environ["CDK_CONTEXT_JSON"]))
    except (KeyError, ValueError):
        return None


def main() -> int:
    # Slow steps start early so that they overlap: the Deep Learning Container lookup (a child process, when not
    # cached) and CDK's template validation (a node process that builds its engine on the other core while the
    # app is created: stacks/cfn_validate.py) start before jsii does, and the jsii kernel loads cdk-nag while
    # Python imports CDK's service modules (stacks/validation.py). Not for a configuration that fails to load:
    # that is reported below before any synth.
    early = _early_config()
    if early is not None:
        prefetch_dlc_image(early.region, early.batch.dlc_pytorch_version, early.batch.dlc_python_version)
    validator, in_kernel = None, False
    if early is not None or "CDK_CONTEXT_JSON" not in os.environ:  # not for a context that fails to load
        validator, in_kernel = _start_validation()
    import aws_cdk as cdk

    from stacks.validation import add_checks, load_checks_while_importing

    load_checks_while_importing()
    from stacks.platform import create_platform

    app = cdk.App(builtin_cloud_formation_validation=in_kernel)
    context = {k: v for k in CONTEXT_KEYS if (v := app.node.try_get_context(k)) is not None}
    try:
        config = load_config(context)
        workloads = load_all(config.workloads, APP_DIR)
        for name in undeployed_vcpu_limits(config.batch, {w.name for w in workloads}):
            print(f"mlpipe: note: batch.workload_vcpu_limits.{name} names no workload of this app; it applies to none",
                  file=sys.stderr)  # fmt: skip
        prefetch_dlc_image(config.region, config.batch.dlc_pytorch_version, config.batch.dlc_python_version)
        # create_platform also runs the synth-time guards (stacks/guards.py).
        create_platform(app, config, workloads=workloads)
    except WorkloadError as error:
        print(f"mlpipe: invalid workload: {error}", file=sys.stderr)
        return 2
    except ConfigError as error:
        print(f"mlpipe: invalid configuration: {error}", file=sys.stderr)
        return 2
    add_checks(app, validator)
    app.synth()
    gc.freeze()  # the interpreter's collection at exit would walk every object once more
    return 0


def _start_validation() -> tuple[TemplateValidator | None, bool]:
    """CDK's template validation in a process of its own (stacks/cfn_validate.py), and whether CDK should
    validate in the kernel instead, as it does by default: when that process cannot start (aws-cdk-lib's
    JavaScript missing or of another version). Neither for `cdk synth --no-validation`."""
    try:
        return start_template_validation(), False
    except TemplateValidationError as error:
        print(f"mlpipe: note: {error}; CDK validates the templates in the app's own process (slower)",
              file=sys.stderr)  # fmt: skip
        return None, True


if __name__ == "__main__":
    sys.exit(main())
