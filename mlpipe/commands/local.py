"""`mlpipe local run` and `mlpipe local redrive`: the whole pipeline on this machine (mlpipe/local/mode.py).

Exit status: 0 when the run succeeds, 1 when it fails (the summary names the state, the cause and the log),
2 for bad arguments (before any work), 130 when interrupted with Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlpipe.commands._common import subcommands

DEFAULT_WORKDIR = Path("local-run")


def _int(low: int, high: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text.replace("_", "").replace(",", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value:,} is out of range: give {low:,} to {high:,}")
        return value

    return parse


def register(parser: argparse.ArgumentParser) -> None:
    from mlpipe.local.options import DEFAULT_ROWS, MAX_ROWS, MIN_ROWS

    parser.description = (
        "Run the pipeline on this machine, offline: the synthesized state machine on an embedded moto server, "
        "the real Lambdas, the Glue and EMR scripts on local Spark, the training and inference containers' "
        "code as local processes."
    )
    sub = subcommands(parser, "local_command")
    run = sub.add_parser("run", help="run a workload's whole pipeline locally")
    run.add_argument(
        "--workload",
        type=Path,
        help="the workload folder to run (default: the one cdk.json lists)",
    )
    run.add_argument(
        "--input",
        type=Path,
        help="raw files (a file or a folder) to run on (default: the workload's raw.generator, or raw.sample)",
    )
    run.add_argument(
        "--rows",
        type=_int(MIN_ROWS, MAX_ROWS),
        default=DEFAULT_ROWS,
        help=f"rows for the workload's raw.generator to write (default {DEFAULT_ROWS:,})",
    )
    run.add_argument(
        "--candidates",
        type=_int(1, 64),
        default=None,
        help="train the workload's first K candidates in parallel (default: all of them)",
    )
    _folder_options(run, "where the run lives")
    run.set_defaults(handler=_run)
    redrive = sub.add_parser("redrive", help="resume a failed local run from the state that failed")
    _folder_options(redrive, "the failed run's folder")
    redrive.set_defaults(handler=_redrive)


def _folder_options(parser: argparse.ArgumentParser, workdir_help: str) -> None:
    parser.add_argument(
        "--workdir", type=Path, default=DEFAULT_WORKDIR, help=f"{workdir_help} (default ./{DEFAULT_WORKDIR})"
    )
    parser.add_argument(
        "--cdk-out",
        type=Path,
        default=None,
        help="the cloud assembly to run: synthesized there unless current (default: the repository's cdk.out)",
    )


def _stop_on_sigterm() -> None:
    """SIGTERM (a `kill`, a CI timeout) stops the run as Ctrl-C does: children stopped, summary written."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


def _run(args: argparse.Namespace) -> int:
    from mlpipe.local.options import Options

    options = Options(
        rows=args.rows,
        candidates=args.candidates,
        workdir=args.workdir,
        workload=args.workload,
        input=args.input,
    )
    options.validate()  # before any work, and before importing the harness (moto, a second)
    from mlpipe.local.mode import LocalRun

    print(f"mlpipe local run: workload {options.folder()}, workdir {args.workdir}", flush=True)
    return _guarded("run", lambda: LocalRun(args.workdir, cdk_out=args.cdk_out).run(options))


def _redrive(args: argparse.Namespace) -> int:
    from mlpipe.local.options import check_redrivable

    check_redrivable(args.workdir)
    from mlpipe.local.mode import LocalRun

    print(f"mlpipe local redrive: workdir {args.workdir}", flush=True)
    return _guarded("redrive", lambda: LocalRun(args.workdir, cdk_out=args.cdk_out).redrive())


def _guarded(command: str, work: Callable[[], dict[str, Any]]) -> int:
    _stop_on_sigterm()
    try:
        return _report(work())
    except KeyboardInterrupt:  # outside the execution (synth, generate, snapshot): no child to stop
        print(f"mlpipe local {command}: interrupted", file=sys.stderr)
        return 130


def _report(summary: dict[str, Any]) -> int:
    print(json.dumps(summary, indent=2, default=str))
    path = Path(summary["workdir"]) / "summary.json"
    if summary["status"] == "SUCCEEDED":
        print(f"local run {summary['run_id']} SUCCEEDED: summary in {path}")
        return 0
    failure = summary.get("failure", {})
    if failure.get("reason"):  # the failed job's exit and the end of its log, which usually says why
        print(f"{failure.get('job')}: {failure['reason']}", file=sys.stderr)
    print(
        f"local run {summary.get('run_id')} {summary['status']}: state {failure.get('state')} failed with "
        f"{failure.get('error')}; log: {failure.get('log')}; summary in {path}",
        file=sys.stderr,
    )
    return 130 if summary["status"] == "ABORTED" else 1
