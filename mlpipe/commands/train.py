"""`mlpipe train ...`: submit a Batch training job (single-node or multi-node), follow it, read its
logs, cancel it."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from datetime import UTC, datetime
from typing import Any

from mlpipe.commands._common import (
    add_common_options,
    deployment,
    emit_json,
    handles_errors,
    positive_seconds,
    subcommands,
    when,
)


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _tag(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


def register(parser: argparse.ArgumentParser) -> None:
    sub = subcommands(parser, "train_command")

    submit = sub.add_parser(
        "submit",
        help="submit a training job to AWS Batch",
        description=(
            "Submit a training job: single-node (default) or multi-node DDP (--nodes N). The GPU and node counts are checked against the job definition and "
            "the queue's instance types before anything is submitted."
        ),
    )
    submit.add_argument(
        "--input",
        "--manifest",
        dest="input",
        required=True,
        help="s3:// URI the training code reads: a feature manifest (manifest.json) or a data prefix",
    )
    submit.add_argument("--output-prefix", required=True, help="s3:// prefix for model/ and metrics.json")
    submit.add_argument(
        "--checkpoint",
        help="s3:// checkpoint prefix (default: s3://<artifacts>/checkpoints/<workload>/<name>/)",
    )
    submit.add_argument(
        "--hyperparameters",
        default="{}",
        help="a JSON object, e.g. '{\"lr\": 0.003}', or @file.json (default {})",
    )
    submit.add_argument(
        "--nodes", type=_whole, default=1, help="nodes; more than 1 runs multi-node DDP (1 to 16)"
    )
    submit.add_argument("--gpus", type=_whole, help="GPUs per node (1 to 8; default: the job definition's)")
    submit.add_argument(
        "--queue",
        help="spot-first, on-demand, or a queue name/ARN (default: spot-first; on-demand for --nodes > 1)",
    )
    submit.add_argument(
        "--job-definition", help="name, name:revision or ARN (default: the deployment's training definition)"
    )
    submit.add_argument("--name", help="job name (default: mlpipe-train-<UTC time>)")
    submit.add_argument(
        "--retry-attempts", type=_whole, help="attempts (1 to 10; the definition's rules on which)"
    )
    submit.add_argument(
        "--timeout-minutes", type=_whole, help="timeout per attempt (default: the definition's)"
    )
    submit.add_argument(
        "--tag", type=_tag, action="append", default=[], metavar="KEY=VALUE", help="repeatable"
    )
    submit.add_argument(
        "--depends-on",
        action="append",
        default=[],
        metavar="JOB_ID",
        help="a job this one waits for; repeatable",
    )
    submit.add_argument(
        "--image",
        help="run another container image: registers <training definition>-custom with it (same role, "
        "resources and vCPU cap; needs iam:PassRole on the workload's job roles)",
    )
    submit.add_argument(
        "--command",
        type=shlex.split,
        default=[],
        help="the container's command instead of the definition's, e.g. 'python train.py --epochs 3'; it "
        "reads its locations from MLPIPE_INPUT, MLPIPE_OUTPUT, MLPIPE_CHECKPOINT, MLPIPE_HYPERPARAMETERS",
    )
    submit.add_argument(
        "--job-env",
        type=_tag,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable of the job's container(s); repeatable (--env names the deployment)",
    )
    submit.add_argument(
        "--dry-run", action="store_true", help="check everything and print the request; submit nothing"
    )
    _wait_options(submit, "the job until it ends, tailing its log")
    _overrides(submit)
    submit.set_defaults(handler=_submit)

    status = sub.add_parser(
        "status", help="show a job", description="Show a Batch job's status, attempts and log stream."
    )
    status.add_argument("job_id", metavar="JOB_ID")
    _wait_options(status, "the job until it ends, tailing its log")
    _overrides(status)
    status.set_defaults(handler=_status)

    logs = sub.add_parser("logs", help="print a job's log", description="Print a Batch job's CloudWatch log.")
    logs.add_argument("job_id", metavar="JOB_ID", help="a job id (an array child: <id>:<index>)")
    logs.add_argument("--node", type=_whole, help="a multi-node job's node (default: the main node)")
    logs.add_argument("--follow", action="store_true", help="keep printing until the job ends")
    logs.add_argument("--poll-seconds", type=positive_seconds, default=5.0, help="with --follow (default 5)")
    _overrides(logs)
    logs.set_defaults(handler=_logs)

    cancel = sub.add_parser(
        "cancel", help="cancel or stop a job", description="Cancel a queued job, stop a running one."
    )
    cancel.add_argument("job_id", metavar="JOB_ID")
    cancel.add_argument("--reason", default="cancelled with mlpipe train cancel", help="recorded on the job")
    _overrides(cancel)
    cancel.set_defaults(handler=_cancel)


def _wait_options(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--wait", action="store_true", help=f"follow {what}")
    parser.add_argument(
        "--poll-seconds",
        type=positive_seconds,
        default=10.0,
        help="seconds between polls with --wait (default 10)",
    )


def _overrides(parser: argparse.ArgumentParser) -> None:
    add_common_options(parser)


def _jobs(args: argparse.Namespace) -> Any:
    from mlpipe.client import TrainingJobs

    return TrainingJobs(deployment(args))


@handles_errors
def _submit(args: argparse.Namespace) -> int:
    from mlpipe.client import TrainingRequest
    from mlpipe.client.errors import UsageError
    from mlpipe.client.run_input import parse_json, read_json_file

    text = args.hyperparameters
    hyperparameters = (
        read_json_file(text[1:]) if text.startswith("@") else parse_json(text, source="--hyperparameters")
    )
    if not isinstance(hyperparameters, dict):
        raise UsageError("--hyperparameters must be a JSON object")
    request = TrainingRequest(
        input=args.input,
        output=args.output_prefix,
        checkpoint=args.checkpoint,
        hyperparameters=hyperparameters,
        nodes=args.nodes,
        gpus=args.gpus,
        queue=args.queue,
        job_definition=args.job_definition,
        name=args.name,
        retry_attempts=args.retry_attempts,
        timeout_minutes=args.timeout_minutes,
        tags=dict(args.tag),
        depends_on=tuple(args.depends_on),
        image=args.image,
        command=tuple(args.command),
        environment=dict(args.job_env),
    )
    jobs = _jobs(args)
    submission = jobs.submit(request, dry_run=args.dry_run)
    if args.dry_run or not args.wait:
        if args.output == "json":
            emit_json(submission.to_json())
        elif args.dry_run:
            shown = dict(submission.request)
            registration = shown.pop("registerJobDefinition", None)
            if registration is not None:
                print("dry run: nothing registered or submitted; the RegisterJobDefinition request would be:")
                emit_json(registration)
                print("and the SubmitJob request, on the job definition it registers:")
            else:
                print("dry run: nothing submitted; the SubmitJob request would be:")
            emit_json(shown)
        else:
            print(f"submitted job {submission.request['jobName']} ({submission.job_id})")
            print(f"follow it with: mlpipe train status {submission.job_id} --wait")
        return 0
    print(f"submitted job {submission.request['jobName']} ({submission.job_id})", file=sys.stderr)
    return _follow(args, jobs, str(submission.job_id))


@handles_errors
def _status(args: argparse.Namespace) -> int:
    jobs = _jobs(args)
    if args.wait:
        return _follow(args, jobs, args.job_id)
    _report(args, jobs.describe(args.job_id))
    return 0


def _follow(args: argparse.Namespace, jobs: Any, job_id: str) -> int:
    log_stream = sys.stderr if args.output == "json" else sys.stdout

    def on_status(job: Any) -> None:
        stamp = datetime.now(UTC).astimezone().strftime("%H:%M:%S")
        reason = f" ({job.status_reason})" if job.status_reason else ""
        print(f"{stamp} job {job.name}: {job.status}{reason}", file=sys.stderr, flush=True)

    def on_log(event: dict[str, Any]) -> None:
        print(event.get("message", ""), file=log_stream, flush=True)

    job = jobs.follow(job_id, on_status=on_status, on_log=on_log, poll_seconds=args.poll_seconds)
    _report(args, job)
    return 0 if job.succeeded else 1


def _report(args: argparse.Namespace, job: Any) -> None:
    if args.output == "json":
        emit_json(job.to_json())
        return
    lines = [
        f"job {job.name} ({job.job_id}): {job.status}",
        f"  queue        {job.queue or '-'}",
        f"  definition   {job.job_definition or '-'}",
        f"  created      {when(job.created_at)}",
        f"  started      {when(job.started_at)}",
        f"  stopped      {when(job.stopped_at)}",
        f"  attempts     {job.attempts}",
    ]
    if job.num_nodes:
        lines.append(f"  nodes        {job.num_nodes}")
    if job.array_summary is not None:
        summary = ", ".join(f"{n} {status.lower()}" for status, n in sorted(job.array_summary.items()))
        lines.append(f"  array        {summary or '-'}")
    if job.status_reason:
        lines.append(f"  reason       {job.status_reason}")
    if job.exit_code is not None:
        lines.append(f"  exit code    {job.exit_code}")
    if job.log_stream:
        lines.append(f"  log stream   {job.log_stream}")
    for name in ("input", "output", "checkpoint", "hyperparameters"):
        if name in job.parameters:
            lines.append(f"  {name:<12} {job.parameters[name]}")
    print("\n".join(lines))


@handles_errors
def _logs(args: argparse.Namespace) -> int:
    import time

    jobs = _jobs(args)
    position: dict[str, str] = {}
    while True:
        job = jobs.describe(args.job_id)
        count = 0
        for event in jobs.log_events(job, node=args.node, position=position):
            count += 1
            if args.output == "json":  # one JSON object per line
                print(
                    json.dumps({"timestamp": event.get("timestamp"), "message": event.get("message")}),
                    flush=True,
                )
            else:
                print(event.get("message", ""), flush=True)
        if not args.follow or job.status in ("SUCCEEDED", "FAILED"):
            if not position and not count and job.log_stream is None:
                print(f"job {job.name} has no log stream yet ({job.status})", file=sys.stderr)
            return 0
        time.sleep(args.poll_seconds)


@handles_errors
def _cancel(args: argparse.Namespace) -> int:
    job = _jobs(args).cancel(args.job_id, reason=args.reason)
    _report(args, job)
    return 0
