"""The workload launcher: run a workload's own training or inference script on every rank of a Batch job.

    python -m mlpipe_batch.run --code s3://…/code.zip --entrypoint train.py [--code-sha256 HEX]
        [--input URI] [--model URI] [--output URI] [--checkpoint URI] [--hyperparameters JSON]
        [--wheel wheels/x.whl ...] [-- script arguments]

The code package (a zip of the workload folder, mlpipe.code_package) is fetched, checked against its digest
and unpacked; its wheels are installed next to it without an index. Then one process per local GPU (or one on
a CPU node) runs `python <entrypoint> <script arguments>` in the unpacked folder, with the environment that
docs/workloads.md documents:

- torchrun's: RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, GROUP_RANK, MASTER_ADDR, MASTER_PORT (one node,
  several GPUs on one node, or every node of a Batch multi-node parallel job);
- MLPIPE_INPUT (the URI given with --input), MLPIPE_HYPERPARAMETERS (a JSON object), MLPIPE_ATTEMPT;
- MLPIPE_MODEL_DIR, a local folder holding every object under --model (a trained model, for inference and
  evaluation), fetched before the ranks start;
- MLPIPE_CHECKPOINT_DIR, a local folder: filled from --checkpoint before the ranks start, and uploaded back
  by the main node when they have exited, whatever their exit status;
- MLPIPE_OUTPUT_DIR, a local folder: uploaded to --output by the main node when every rank succeeded,
  `metrics.json` last (the commit marker, removed first so a reader never pairs an old one with new files;
  a run that writes none fails);
- MLPIPE_STOP_GRACE_S: after SIGTERM (a Batch timeout, a terminated job, an instance going away), each rank has this many seconds
  to write its checkpoint and exit 143; then it is killed.

When one rank exits non-zero, its siblings are stopped and the node exits with that status, which fails the
Batch job. Bad arguments, a package that does not match its digest or lacks the entrypoint: one line and exit
status 2, before any rank starts.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

from mlpipe_batch import storage
from mlpipe_batch.errors import OneLineArgumentParser, UsageError, fail
from mlpipe_batch.launcher import Topology, detect, launch_command, local_device_count

PROG = "mlpipe_batch.run"
STOP_GRACE_S = 25.0
"""A Batch timeout sends SIGKILL 30 s after SIGTERM (Spot gives 120 s): ranks must be done within both."""
COMMIT_MARKER = "metrics.json"
MAX_UNPACKED_BYTES = 256 * 1024 * 1024
"""As mlpipe.code_package refuses to build: a larger package is not one of ours."""

log = logging.getLogger("mlpipe_batch")


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    argv = list(argv)
    script_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, script_args = argv[:cut], argv[cut + 1 :]
    parser = OneLineArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", required=True, help="the code package: an s3:// URI or a local path")
    parser.add_argument("--code-sha256", required=True, help="the package's SHA-256; refused if it differs")
    parser.add_argument("--entrypoint", required=True, help="the script to run, relative to the package root")
    parser.add_argument("--input", default="", help="the data the script reads (MLPIPE_INPUT)")
    parser.add_argument("--model", default="", help="prefix of a saved model, fetched into MLPIPE_MODEL_DIR")
    parser.add_argument("--output", default="", help="prefix that MLPIPE_OUTPUT_DIR is uploaded to")
    parser.add_argument("--checkpoint", default="", help="prefix that MLPIPE_CHECKPOINT_DIR is synced with")
    parser.add_argument("--hyperparameters", default="{}", help="a JSON object (MLPIPE_HYPERPARAMETERS)")
    parser.add_argument("--wheel", action="append", default=[], help="a wheel in the package; repeatable")
    parser.add_argument(
        "--stop-grace-s", type=float, default=STOP_GRACE_S, help="seconds to stop after SIGTERM"
    )
    args = parser.parse_args(argv)
    try:
        hp = json.loads(args.hyperparameters)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--hyperparameters is not JSON: {exc.msg}") from None
    if not isinstance(hp, dict):
        raise UsageError("--hyperparameters must be a JSON object")
    _inside(args.entrypoint, "--entrypoint")
    for wheel in args.wheel:
        _inside(wheel, "--wheel")
    if not 0 < args.stop_grace_s <= 110:
        raise UsageError(f"--stop-grace-s must be in (0, 110], got {args.stop_grace_s}")
    return args, script_args


def _inside(relative: str, flag: str) -> None:
    path = PurePosixPath(relative)
    if not relative or path.is_absolute() or ".." in path.parts:
        raise UsageError(f"{flag} {relative!r} must be a path inside the code package")


def fetch_package(uri: str, sha256: str, into: Path) -> None:
    """Unpack the code package at `uri` into `into`; UsageError when it is missing, altered or unsafe."""
    try:
        data = storage.read_bytes(uri)
    except storage.StorageError as exc:
        raise UsageError(f"cannot read the code package: {exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256.lower():
        raise UsageError(f"the code package {uri} has SHA-256 {digest}, not the expected {sha256}")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise UsageError(f"the code package {uri} is not a zip file") from None
    with archive:
        members = archive.infolist()
        for member in members:
            _inside(member.filename.rstrip("/") or ".", "a code package member")
            if (member.external_attr >> 16) & 0o170000 == 0o120000:
                raise UsageError(f"the code package holds a symbolic link: {member.filename}")
        if sum(m.file_size for m in members) > MAX_UNPACKED_BYTES:
            raise UsageError(f"the code package {uri} unpacks to over {MAX_UNPACKED_BYTES // 2**20} MiB")
        archive.extractall(into)


def install_wheels(package: Path, wheels: Sequence[str], site: Path) -> None:
    """Install the package's wheels into `site`, from the package alone (no index: the job may have no
    route to one)."""
    paths = [package / w for w in wheels]
    missing = [w for w, p in zip(wheels, paths, strict=True) if not p.is_file()]
    if missing:
        raise UsageError(f"--wheel {missing[0]!r} is not in the code package")
    if not paths:
        return
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--no-compile"]
    command += ["--disable-pip-version-check", "--target", str(site), *map(str, paths)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise UsageError(f"cannot install the package's wheels: {last}")


def download_tree(prefix: str, folder: Path) -> int:
    """Copy every object under `prefix` into `folder`; returns how many."""
    names = storage.list_tree(prefix)
    for name in names:
        _inside(
            name, f"the object {storage.join(prefix, name)}"
        )  # a key with '..' must not escape the folder
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(storage.read_bytes(storage.join(prefix, name)))
    return len(names)


def upload_tree(folder: Path, prefix: str, *, last: str | None = None) -> int:
    """Copy every file under `folder` to `prefix`, the file named `last` (if any) after all others."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    files.sort(key=lambda p: p.relative_to(folder).as_posix() == last)
    for path in files:
        storage.write_bytes(storage.join(prefix, path.relative_to(folder).as_posix()), path.read_bytes())
    return len(files)


def rank_environment(
    environ: Mapping[str, str], args: argparse.Namespace, work: Path, package: Path, site: Path
) -> dict[str, str]:
    """The environment every rank shares (the launcher adds torchrun's per-rank variables)."""
    env = dict(environ)
    pythonpath = [str(site), str(package), environ.get("PYTHONPATH", "")]
    env.update(
        PYTHONPATH=os.pathsep.join(p for p in pythonpath if p),
        MLPIPE_INPUT=args.input,
        MLPIPE_HYPERPARAMETERS=json.dumps(json.loads(args.hyperparameters), sort_keys=True),
        MLPIPE_ATTEMPT=environ.get("AWS_BATCH_JOB_ATTEMPT") or "1",
        MLPIPE_MODEL_DIR=str(work / "model"),
        MLPIPE_CHECKPOINT_DIR=str(work / "checkpoint"),
        MLPIPE_OUTPUT_DIR=str(work / "output"),
        MLPIPE_STOP_GRACE_S=f"{args.stop_grace_s:g}",
    )
    return env


def run(args: argparse.Namespace, script_args: Sequence[str], environ: Mapping[str, str]) -> int:
    topology: Topology = detect(environ, local_device_count(environ))
    if topology.mode == "worker" and "RANK" in environ:
        raise UsageError("mlpipe_batch.run starts the ranks itself: do not run it under torchrun")
    main_node = topology.node_rank == 0
    work = Path(tempfile.mkdtemp(prefix="mlpipe-run-", dir=environ.get("MLPIPE_WORKDIR") or None))
    try:
        package, site = work / "code", work / "site"
        for folder in (package, site, work / "model", work / "checkpoint", work / "output"):
            folder.mkdir()
        fetch_package(args.code, args.code_sha256, package)
        if not (package / args.entrypoint).is_file():
            raise UsageError(f"--entrypoint {args.entrypoint!r} is not in the code package")
        install_wheels(package, args.wheel, site)
        if args.model and download_tree(args.model, work / "model") == 0:
            raise UsageError(f"--model {args.model}: no objects under this prefix")
        if args.checkpoint:
            found = download_tree(args.checkpoint, work / "checkpoint")
            if main_node:
                log.info("%d checkpoint file(s) from %s", found, args.checkpoint)
        env = rank_environment(environ, args, work, package, site)
        command = [sys.executable, str(package / args.entrypoint), *script_args]
        code = launch_command(topology, command, env, cwd=str(package), grace_s=args.stop_grace_s)
        if main_node and args.checkpoint:
            upload_tree(work / "checkpoint", args.checkpoint)
        if main_node and code == 0 and args.output:
            if not (work / "output" / COMMIT_MARKER).is_file():
                log.error("the entrypoint succeeded but wrote no %s into MLPIPE_OUTPUT_DIR", COMMIT_MARKER)
                return 1
            storage.delete(storage.join(args.output, COMMIT_MARKER))
            upload_tree(work / "output", args.output, last=COMMIT_MARKER)
        return code
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s run: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        args, script_args = parse_args(sys.argv[1:] if argv is None else argv)
        return run(args, script_args, os.environ)
    except UsageError as exc:
        fail(PROG, exc)


if __name__ == "__main__":
    raise SystemExit(main())
