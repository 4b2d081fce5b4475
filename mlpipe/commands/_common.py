"""What every deployment command shares: one-line argument errors, the AWS and deployment options,
`--output json`, and the translation of errors a user can fix into one line and an exit status."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, NoReturn

from botocore.exceptions import BotoCoreError, ClientError

HandlerFn = Callable[[argparse.Namespace], int]


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (exit 2), unknown arguments included."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")

    def parse_known_args(  # type: ignore[override]
        self, args: Any = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


def adopt(parser: argparse.ArgumentParser) -> None:
    """Give a parser that mlpipe.cli made (a plain ArgumentParser) the one-line errors of OneLineParser."""
    parser.__class__ = OneLineParser


def subcommands(parser: argparse.ArgumentParser, dest: str) -> Any:
    adopt(parser)
    return parser.add_subparsers(dest=dest, required=True, metavar="SUBCOMMAND", parser_class=OneLineParser)


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """--output, and where to find the deployment: --region, --profile, --env, --stack-prefix."""
    group = parser.add_argument_group("output and deployment")
    group.add_argument(
        "--output",
        choices=("text", "json"),
        default="text",
        help="text for people (default), json for scripts",
    )
    group.add_argument("--region", help="AWS region (default: AWS_REGION or your profile's)")
    group.add_argument("--profile", help="AWS named profile (default: AWS_PROFILE or the default chain)")
    group.add_argument("--env", help="the deployed environment, as in cdk.json (default: MLPIPE_ENV or dev)")
    group.add_argument(
        "--stack-prefix",
        help="the stacks' name prefix (default: MLPIPE_STACK_PREFIX or Mlpipe: MlpipeDev-...)",
    )
    group.add_argument(
        "--workload",
        help="the deployed workload to act for (default: MLPIPE_WORKLOAD, or the only one deployed)",
    )


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 600:
        raise argparse.ArgumentTypeError(f"{text} is out of range: give more than 0 and at most 600 seconds")
    return value


def deployment(args: argparse.Namespace, overrides: Mapping[str, str | None] | None = None) -> Any:
    from mlpipe.client import Aws, Deployment

    aws = Aws(region=args.region, profile=args.profile)
    return Deployment(
        aws, env=args.env, stack_prefix=args.stack_prefix, workload=args.workload, overrides=overrides
    )


def handles_errors(function: HandlerFn) -> HandlerFn:
    """Errors a user can fix: `mlpipe: error: <one line>` on stderr and their exit status. Anything else
    propagates with its traceback."""

    @functools.wraps(function)
    def wrapper(args: argparse.Namespace) -> int:
        from mlpipe.client.errors import MlpipeClientError, translate

        try:
            return function(args)
        except MlpipeClientError as exc:
            return fail(exc, exc.exit_code)
        except (ClientError, BotoCoreError) as exc:
            translated = translate(exc)
            if translated is None:
                raise
            return fail(translated, translated.exit_code)

    return wrapper


def fail(message: object, code: int) -> int:
    sys.stderr.write(f"mlpipe: error: {message}\n")
    return code


def emit_json(document: Any) -> None:
    json.dump(document, sys.stdout, indent=2, default=_default, ensure_ascii=False)
    sys.stdout.write("\n")


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def when(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def duration(start: datetime | None, stop: datetime | None) -> str:
    if start is None:
        return "-"
    end = stop or datetime.now(start.tzinfo)
    seconds = max(int((end - start).total_seconds()), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"
