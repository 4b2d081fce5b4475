"""`mlpipe list`: the pipeline's executions, newest first."""

from __future__ import annotations

import argparse

from mlpipe.commands._common import duration, emit_json, handles_errors, when
from mlpipe.commands._executions import add_options, executions


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"{value} is out of range: give 1 to 1000")
    return value


def register(parser: argparse.ArgumentParser) -> None:
    from mlpipe.client.executions import STATUSES

    parser.description = "List the pipeline's executions, newest first."
    parser.add_argument("--status", choices=STATUSES, help="only executions with this status")
    parser.add_argument("--limit", type=_limit, default=20, help="at most this many (1 to 1000, default 20)")
    add_options(parser)
    parser.set_defaults(handler=_list)


@handles_errors
def _list(args: argparse.Namespace) -> int:
    found = executions(args).list(status=args.status, limit=args.limit)
    if args.output == "json":
        emit_json([e.to_json() for e in found])
        return 0
    if not found:
        print("no executions")
        return 0
    print(f"{'RUN':<50} {'STATUS':<16} {'STARTED':<20} DURATION")
    for execution in found:
        span = duration(execution.start_date, execution.stop_date)
        print(f"{execution.name:<50} {execution.status:<16} {when(execution.start_date):<20} {span}")
    return 0
