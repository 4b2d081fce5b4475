"""`mlpipe redrive`: resume a failed execution from the states that did not succeed (RedriveExecution)."""

from __future__ import annotations

import argparse
import sys

from mlpipe.commands._common import emit_json, handles_errors
from mlpipe.commands._executions import add_options, add_wait_options, executions, follow_and_report


def register(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Redrive a FAILED, TIMED_OUT or ABORTED execution: Step Functions reruns it from the states that did "
        "not succeed, with the same input (within 14 days of its end)."
    )
    parser.add_argument("run", metavar="RUN", help="a run id (the execution's name) or an execution ARN")
    add_wait_options(parser, "the redriven execution")
    add_options(parser)
    parser.set_defaults(handler=_redrive)


@handles_errors
def _redrive(args: argparse.Namespace) -> int:
    client = executions(args)
    arn = client.execution_arn(args.run)
    seen = client.progress(arn).last_event_id
    execution = client.redrive(arn)
    if args.wait:
        print(f"redrove run {execution.name} ({execution.redrive_count} redrive(s))", file=sys.stderr)
        return follow_and_report(args, client, arn, since_event=seen)
    if args.output == "json":
        emit_json(execution.to_json())
    else:
        print(f"redrove run {execution.name} (redrive {execution.redrive_count})")
        print(f"follow it with: mlpipe status {execution.name} --wait")
    return 0
