"""Shared by the execution commands (run, status, list, stop, redrive)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mlpipe.commands._common import add_common_options, adopt, deployment, emit_json, positive_seconds


def add_options(parser: argparse.ArgumentParser) -> None:
    adopt(parser)
    parser.add_argument(
        "--state-machine-arn",
        help="the pipeline's state machine (default: MLPIPE_STATE_MACHINE_ARN or the Pipeline stack's output)",
    )
    add_common_options(parser)


def add_wait_options(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--wait", action="store_true", help=f"follow {what} until it ends, showing each state"
    )
    parser.add_argument(
        "--poll-seconds",
        type=positive_seconds,
        default=5.0,
        help="seconds between polls with --wait (default 5)",
    )


def executions(args: argparse.Namespace) -> Any:
    from mlpipe.client import Executions

    return Executions(deployment(args, {"StateMachineArn": args.state_machine_arn}))


def follow_and_report(args: argparse.Namespace, client: Any, ref: str, *, since_event: int = 0) -> int:
    """Follow an execution to its end, then print it: exit 0 if it succeeded, 1 otherwise."""
    from mlpipe.commands._display import ExecutionProgressDisplay

    with ExecutionProgressDisplay(ref) as display:
        final = client.follow(ref, observer=display, poll_seconds=args.poll_seconds, since_event=since_event)
    report(args, final)
    return 0 if final.succeeded else 1


def report(args: argparse.Namespace, execution: Any) -> None:
    from mlpipe.commands._display import execution_lines

    if args.output == "json":
        emit_json(execution.to_json())
        return
    print("\n".join(execution_lines(execution)))
    if execution.succeeded and execution.output is not None:
        print("output:")
        emit_json(execution.output)
    sys.stdout.flush()
