"""`mlpipe workload check DIR`: read and validate a workload's manifest (mlpipe/workload.py).

Exit status: 0 when the workload is valid (a summary is printed), 2 with one line naming the key otherwise.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from mlpipe.cli import UsageError
from mlpipe.commands._common import subcommands
from mlpipe.workload import Workload


def register(parser: argparse.ArgumentParser) -> None:
    sub = subcommands(parser, "workload_command")
    check = sub.add_parser("check", help="validate a workload folder's workload.toml")
    check.add_argument("folder", metavar="DIR", help="the workload folder (or its workload.toml)")
    check.add_argument("--output", choices=("text", "json"), default="text", help="text (default) or json")
    check.set_defaults(handler=_check)


def summary(workload: Workload) -> dict[str, Any]:
    """What a reader wants to know about a valid workload, as plain data."""
    stages = [name for name in ("clean", "features") if getattr(workload, name) is not None]
    candidates = [c.name for c in workload.candidates]
    return {
        "name": workload.name,
        "root": str(workload.root),
        "raw": {"format": workload.raw.format, "prefix": workload.raw_prefix},
        "spark_stages": stages,
        "train": workload.train.entrypoint or workload.train.trainer,
        "infer": workload.infer.entrypoint or workload.infer.trainer,
        "metric": {
            "name": workload.metric.name,
            "direction": workload.metric.direction,
            "gate": workload.metric.gate,
        },
        "candidates": candidates or (f"{workload.search.kind} search" if workload.search else []),
    }


def _check(args: argparse.Namespace) -> int:
    from mlpipe.workload import WorkloadError, load

    try:
        workload = load(args.folder)
    except WorkloadError as exc:
        raise UsageError(str(exc)) from None
    info = summary(workload)
    if args.output == "json":
        print(json.dumps(info, indent=2))
        return 0
    metric = info["metric"]
    print(f"workload {info['name']} ({info['root']}): valid")
    print(f"  raw          {info['raw']['format']} under the raw bucket's {info['raw']['prefix']}")
    print(f"  spark stages {', '.join(info['spark_stages']) or 'none'}")
    print(f"  train        {info['train']}")
    print(f"  infer        {info['infer']}")
    print(f"  metric       {metric['name']} ({metric['direction']}, gate {metric['gate']})")
    candidates = info["candidates"]
    print(f"  candidates   {', '.join(candidates) if isinstance(candidates, list) else candidates}")
    return 0
