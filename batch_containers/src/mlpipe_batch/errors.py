"""Errors a user can cause, each with its exit code, and the one-line reporting of them.

Errors a user cannot cause (bugs, lost nodes) are left alone: Python prints their traceback and exits 1.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

EXIT_USAGE = 2
"""Bad arguments, hyperparameters, manifest or model, found before any work starts; nothing was written."""
EXIT_DATA = 3
"""Bad input data found while working (a shard that disagrees with its manifest, a category out of range)."""
EXIT_STOPPED = 143
"""Stopped by SIGTERM/SIGINT after writing a checkpoint: a retried Spot attempt, or a new job, resumes from it."""


class UsageError(Exception):
    """A problem with what the user passed in. Reported as one line; exit code 2."""

    exit_code = EXIT_USAGE


class DataError(Exception):
    """A problem with the input data found while reading it. Reported as one line; exit code 3."""

    exit_code = EXIT_DATA


def fail(prog: str, error: UsageError | DataError) -> NoReturn:
    """Print `error` as exactly one line on stderr and exit with its code."""
    message = " ".join(str(error).split())
    print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(error.exit_code)


class OneLineArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise UsageError instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)
