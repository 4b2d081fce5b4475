"""`mlpipe run`: start a pipeline execution (validated, named by its run id), optionally following it."""

from __future__ import annotations

import argparse
import sys

from mlpipe.commands._common import emit_json, handles_errors
from mlpipe.commands._executions import add_options, add_wait_options, executions, follow_and_report


def register(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Start the pipeline on an execution input (a JSON file, see docs/pipeline.md). The input is validated "
        "against the published schema before any AWS call; the execution is named after the run id (the "
        "input's run_id, or the one the Plan state derives), so starting the same input twice starts it once."
    )
    parser.add_argument(
        "input", nargs="?", metavar="INPUT.json", help="the execution input ('-': standard input)"
    )
    parser.add_argument(
        "--raw-uri",
        help="s3://<raw bucket>/<the workload's raw prefix>...: sets the input's raw_uri (or is the input)",
    )
    parser.add_argument("--run-id", help="sets the input's run_id (3 to 48 of a-z, 0-9, '-')")
    add_wait_options(parser, "the execution")
    add_options(parser)
    parser.set_defaults(handler=_run)


@handles_errors
def _run(args: argparse.Namespace) -> int:
    from mlpipe.client.errors import UsageError
    from mlpipe.client.run_input import read_json_file

    if args.input is None and args.raw_uri is None:
        raise UsageError("give an execution input file (INPUT.json) or --raw-uri")
    document = {} if args.input is None else read_json_file(args.input, stdin_text=_stdin(args.input))
    if args.raw_uri is not None:
        if not isinstance(document, dict):
            raise UsageError(f"{args.input}: the execution input must be a JSON object")
        document = {**document, "raw_uri": args.raw_uri}
    client = executions(args)
    prepared = client.prepare(document, run_id=args.run_id)
    started = client.start(prepared)
    if not args.wait:
        if args.output == "json":
            emit_json(
                {
                    "run_id": prepared.run_id,
                    "run_id_derived": prepared.derived,
                    "execution_arn": started.arn,
                    "status": started.status,
                    "start_date": started.start_date,
                }
            )
        else:
            print(f"started run {prepared.run_id}")
            print(f"  execution  {started.arn}")
            print(f"follow it with: mlpipe status {prepared.run_id}")
        return 0
    print(f"started run {prepared.run_id} ({started.arn})", file=sys.stderr)
    return follow_and_report(args, client, started.arn)


def _stdin(path: str) -> str | None:
    return sys.stdin.read() if path == "-" else None
