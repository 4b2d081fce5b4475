"""`mlpipe status`: one execution's status, running states, output, or failing state with error and cause."""

from __future__ import annotations

import argparse

from mlpipe.commands._common import handles_errors
from mlpipe.commands._executions import add_options, add_wait_options, executions, follow_and_report, report


def register(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Show a pipeline execution: status, running states, output, or where and why it failed."
    )
    parser.add_argument("run", metavar="RUN", help="a run id (the execution's name) or an execution ARN")
    add_wait_options(parser, "the execution")
    add_options(parser)
    parser.set_defaults(handler=_status)


@handles_errors
def _status(args: argparse.Namespace) -> int:
    client = executions(args)
    if args.wait:
        return follow_and_report(args, client, args.run)
    execution = client.describe(args.run)
    report(args, execution)
    return 0
