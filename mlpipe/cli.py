"""The `mlpipe` command: a thin dispatcher over subcommand modules.

To add a command group, add a line to COMMANDS naming a module with `register(parser)`: it adds its own
subcommands and sets `handler=<function(args) -> int>` on each; a handler raises UsageError for bad
arguments it can only detect late. Modules are imported only when their group is used, so one group's
dependencies never slow down another.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence


class UsageError(ValueError):
    """An error the user can fix by changing the arguments: printed as one line, exit status 2."""


# (command, module with register(parser), one-line help)
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("run", "mlpipe.commands.run", "start a pipeline execution on the deployed state machine"),
    ("status", "mlpipe.commands.status", "show a pipeline execution (or follow it with --wait)"),
    ("list", "mlpipe.commands.list_runs", "list the pipeline's executions"),
    ("stop", "mlpipe.commands.stop", "stop a running pipeline execution"),
    ("redrive", "mlpipe.commands.redrive", "resume a failed pipeline execution"),
    ("train", "mlpipe.commands.train", "submit and follow Batch training jobs"),
    ("local", "mlpipe.commands.local", "run the whole pipeline on this machine, offline (local mode)"),
    ("workload", "mlpipe.commands.workload", "start a workload folder (init) or check one (workload.toml)"),
    (
        "preflight",
        "mlpipe.commands.preflight",
        "check the account before a deploy or a run (quotas, bootstrap)",
    ),
)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlpipe", description="Parallel and distributed ML on AWS.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = next((a for a in (argv or []) if not a.startswith("-")), None)
    for name, module, help_text in COMMANDS:
        group = sub.add_parser(name, help=help_text, description=help_text)
        if chosen is None or chosen == name:  # import only the group in use (all of them for --help)
            importlib.import_module(module).register(group)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except UsageError as exc:  # errors a user cannot cause keep their traceback
        parser.exit(2, f"mlpipe: error: {exc}\n")


if __name__ == "__main__":
    raise SystemExit(main())
