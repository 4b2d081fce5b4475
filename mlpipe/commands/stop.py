"""`mlpipe stop`: stop a running execution."""

from __future__ import annotations

import argparse

from mlpipe.commands._common import handles_errors
from mlpipe.commands._executions import add_options, executions, report


def register(parser: argparse.ArgumentParser) -> None:
    parser.description = "Stop a running pipeline execution (its error is mlpipe.Stopped)."
    parser.add_argument("run", metavar="RUN", help="a run id (the execution's name) or an execution ARN")
    parser.add_argument("--cause", help="why (recorded as the execution's cause)")
    add_options(parser)
    parser.set_defaults(handler=_stop)


@handles_errors
def _stop(args: argparse.Namespace) -> int:
    report(args, executions(args).stop(args.run, cause=args.cause))
    return 0
