#!/usr/bin/env python3
"""The mlpipe CDK app: load the environment's config, create the stacks, add cdk-nag, synthesize."""

from __future__ import annotations

import gc
import json
import os
import sys
from pathlib import Path

# A synth is a short-lived process whose objects (mostly the classes of CDK's generated Python bindings, and the
# proxies of jsii objects) all live until it exits: the cyclic collector's passes over them cost about 0.2 s of
# CPU and find almost nothing (a few thousand small objects, measured), so it stays off; see also the end of main().
gc.disable()

# jsii runs on the Node 22 LTS that package.json installs (the machine's Node may be end-of-life).
_NODE_BIN = Path(__file__).resolve().parent / "node_modules" / ".bin"
if _NODE_BIN.is_dir():
    os.environ["PATH"] = f"{_NODE_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
# ... with WebAssembly tier-up deferred, which saves 0.7 s or more per synth (scripts/jsii-node says why).
os.environ.setdefault("JSII_NODE", str(Path(__file__).resolve().parent / "scripts" / "jsii-node"))

from mlpipe.config import ConfigError, MlpipeConfig, load_config  # noqa: E402
from stacks.dlc_image import prefetch_dlc_image  # noqa: E402


def _early_config() -> MlpipeConfig | None:
    """The config from the context the CLI passes in this variable, read before jsii loads; None if there is no
    context here or a bad one (main() reports that)."""
    try:
        return load_config(json.loads(os.environ["CDK_CONTEXT_JSON"]))
    except (KeyError, ValueError):
        return None


_CONFIG = _early_config()
if _CONFIG is not None:  # start the Deep Learning Container lookup now: it runs in parallel with what follows
    prefetch_dlc_image(_CONFIG.region, _CONFIG.batch.dlc_pytorch_version, _CONFIG.batch.dlc_python_version)

import aws_cdk as cdk  # noqa: E402

from stacks.validation import add_checks, build_engine_while_importing  # noqa: E402

# The kernel builds CDK's template-validation engine while Python imports CDK's service modules (saves about
# 0.6 s); not for a bad configuration, which main() rejects before any synth.
_ENGINE = build_engine_while_importing() if _CONFIG is not None else None

from stacks.platform import create_platform  # noqa: E402

CONTEXT_KEYS = ("env", "environments", "destroy_stateful")


def main() -> int:
    app = cdk.App()
    context = {k: v for k in CONTEXT_KEYS if (v := app.node.try_get_context(k)) is not None}
    try:
        config = load_config(context)
        prefetch_dlc_image(config.region, config.batch.dlc_pytorch_version, config.batch.dlc_python_version)
        create_platform(app, config)  # also runs the synth-time guards (stacks/guards.py)
    except ConfigError as error:
        print(f"mlpipe: invalid configuration: {error}", file=sys.stderr)
        return 2
    add_checks(app, _ENGINE)
    app.synth()
    gc.freeze()  # the interpreter's collection at exit would walk every object once more (about 0.2 s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
