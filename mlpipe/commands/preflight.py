"""`mlpipe preflight`: one line per finding about the account, with the command that fixes it; exit 1 when a
deploy or a run would fail (mlpipe/preflight.py says what is checked and why)."""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime
from pathlib import Path

from mlpipe.commands._common import add_common_options, adopt, fail, handles_errors

REPO_ROOT = Path(__file__).resolve().parents[2]


def register(parser: argparse.ArgumentParser) -> None:
    adopt(parser)
    parser.description = (
        "Check the account before a deploy or a run: GPU vCPU quotas, Lambda concurrency, the CDK bootstrap "
        "version, EMR's TLS certificates. Read-only."
    )
    parser.add_argument(
        "--cdk-out", type=Path, default=REPO_ROOT / "cdk.out", help="the synthesized app (default: cdk.out)"
    )
    add_common_options(parser)
    parser.set_defaults(handler=_preflight)


@handles_errors
def _preflight(args: argparse.Namespace) -> int:
    from mlpipe.client.aws import new_session
    from mlpipe.config import ConfigError, load_config
    from mlpipe.preflight import evaluate, gather

    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    context["env"] = args.env or os.environ.get("MLPIPE_ENV") or context.get("env", "dev")
    if args.stack_prefix:
        context.setdefault("environments", {}).setdefault(context["env"], {})["stack_prefix"] = (
            args.stack_prefix
        )
    try:
        config = load_config(context)
    except ConfigError as exc:  # one line and exit 2, before any AWS call
        return fail(exc, 2)
    session = new_session(region=args.region or config.region, profile=args.profile)
    findings = evaluate(config, gather(config, session, cdk_out=args.cdk_out), now=datetime.now(UTC))
    if args.output == "json":
        print(json.dumps([f.__dict__ for f in findings], indent=2))
    else:
        for finding in findings:
            print(finding.line())
    return 0 if all(f.passed for f in findings) else 1
