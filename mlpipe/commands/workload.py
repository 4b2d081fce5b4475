"""`mlpipe workload check DIR`: read and validate a workload's manifest (mlpipe/workload.py).
`mlpipe workload init DIR`: write a small working workload into a new folder (mlpipe/workload_template/).

Exit status of check: 0 when the workload is valid (a summary is printed), 2 with one line naming the key
otherwise. Of init: 0 when the files are written, 2 with one line (before writing anything) when DIR is a
file or a folder that is not empty, or the name is not a workload name.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path
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
    init = sub.add_parser("init", help="write a small working workload into a new folder, to start from")
    init.add_argument("folder", metavar="DIR", help="the folder to create (or an empty one)")
    init.add_argument(
        "--name", help="the workload's name: 2 to 32 lowercase letters, digits and '-' (default: DIR's name)"
    )
    init.set_defaults(handler=_init)


def summary(workload: Workload) -> dict[str, Any]:
    """What a reader wants to know about a valid workload, as plain data."""
    stages = [name for name in ("clean", "features") if getattr(workload, name) is not None]
    candidates = [c.name for c in workload.all_candidates()]
    return {
        "name": workload.name,
        "root": str(workload.root),
        "raw": {"format": workload.raw.format, "prefix": workload.raw_prefix},
        "spark_stages": stages,
        "train": workload.train.entrypoint or workload.train.trainer,
        "infer": workload.infer.entrypoint or workload.infer.trainer,
        "evaluate": workload.evaluate.entrypoint or workload.evaluate.trainer,
        "metric": {
            "name": workload.metric.name,
            "direction": workload.metric.direction,
            "gate": workload.metric.gate,
        },
        "candidates": candidates or (f"{workload.search.kind} search" if workload.search else []),
    }


def _check(args: argparse.Namespace) -> int:
    from mlpipe.workload import WorkloadError, check_deployable, load

    try:
        workload = load(args.folder)
        check_deployable(workload)  # what a synth and `mlpipe local run` would refuse
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
    print(f"  evaluate     {info['evaluate']}")
    print(f"  metric       {metric['name']} ({metric['direction']}, gate {metric['gate']})")
    candidates = info["candidates"]
    print(f"  candidates   {', '.join(candidates) if isinstance(candidates, list) else candidates}")
    return 0


TEMPLATE_PACKAGE = "mlpipe.workload_template"
TEMPLATE_SUFFIX = ".tmpl"
SUBSTITUTED = frozenset({"workload.toml"})
"""The only files with `{name}` in them: the Python files are copied as they are (their braces are code)."""


def template_files() -> dict[str, bytes]:
    """The template's files by their path in a new workload (`.tmpl` dropped), the package marker left out."""
    files: dict[str, bytes] = {}

    def walk(folder: Traversable, prefix: str) -> None:
        for entry in folder.iterdir():
            if entry.name.startswith((".", "__")):  # __init__.py, __pycache__
                continue
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/")
            else:
                files[prefix + entry.name.removesuffix(TEMPLATE_SUFFIX)] = entry.read_bytes()

    walk(resources.files(TEMPLATE_PACKAGE), "")
    return dict(sorted(files.items()))


def init_workload(folder: Path, name: str | None = None) -> tuple[str, list[str]]:
    """Write the template workload into `folder` (created; it must be new or empty) as workload `name`
    (default: the folder's name); returns the name and the files written. UsageError, before anything is
    written, for a folder that is not empty or a name that is not a workload name."""
    from mlpipe.workload import NAME

    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder} is a file: give a new or empty folder")
    if folder.is_dir() and any(folder.iterdir()):
        raise UsageError(f"{folder} is not empty: give a new or empty folder")
    if name is None:
        name = folder.resolve().name
        if NAME.fullmatch(name) is None:
            raise UsageError(
                f"the folder's name {name!r} is not a workload name (2 to 32 lowercase letters, digits and "
                "'-', starting with a letter): give one with --name"
            )
    elif NAME.fullmatch(name) is None:
        raise UsageError(
            f"--name {name!r}: use 2 to 32 lowercase letters, digits and '-', starting with a letter"
        )
    # Written beside the folder, then renamed into place: an interrupted init leaves no half-written workload.
    folder.absolute().parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.init-", dir=folder.absolute().parent))
    written = []
    try:
        for relative, content in template_files().items():
            if relative in SUBSTITUTED:
                content = content.decode("utf-8").replace("{name}", name).encode("utf-8")
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            written.append(relative)
        staging.chmod(0o755)  # mkdtemp's folder is private; the workload folder is an ordinary one
        os.replace(staging, folder)  # onto a new or empty folder
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return name, written


def _init(args: argparse.Namespace) -> int:
    folder = Path(args.folder)
    name, written = init_workload(folder, args.name)
    print(f"workload {name}: wrote {len(written)} files into {folder}")
    for relative in written:
        print(f"  {relative}")
    print("next:")
    print(f"  mlpipe workload check {folder}")
    print(f"  mlpipe local run --workload {folder} --workdir {folder.name}-run")
    print('  then docs/workloads.md, "Your first workload": your own data, and deploying it')
    return 0
