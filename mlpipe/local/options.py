"""The options of `mlpipe local run` and `redrive`, and their checks: light to import (no moto, no Spark),
so that bad arguments are refused at once, before any work."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlpipe.cli import UsageError

REPO_ROOT = Path(__file__).resolve().parents[2]

RUN_FILE = "run.json"
DEFAULT_ROWS = 600_000
MIN_ROWS = 1_000
MAX_ROWS = 100_000_000
SEED = 7


@dataclass(frozen=True)
class Options:
    rows: int = DEFAULT_ROWS
    """Rows for the workload's generator (raw.generator) to write."""
    candidates: int | None = None
    """Train the workload's first K candidates (default: all of them)."""
    workdir: Path = Path("local-run")
    seed: int = SEED
    workload: Path | None = None
    """A workload folder to run instead of the one cdk.json lists."""
    input: Path | None = None
    """Raw files (a file, or a folder of them) to run on instead of the workload's generated or sample data."""

    def validate(self) -> None:
        if self.workload is not None:
            check_synth_folders([self.workload])
        if not MIN_ROWS <= self.rows <= MAX_ROWS:
            raise UsageError(f"--rows must be {MIN_ROWS:,} to {MAX_ROWS:,}, got {self.rows:,}")
        workload = load_workload(self.folder())
        if self.input is None and not (workload.raw.generator or workload.raw.sample):
            raise UsageError(
                f"--input is needed: {self.folder()}/workload.toml has neither raw.generator nor raw.sample"
            )
        if self.input is not None and not input_files(self.input):
            raise UsageError(f"--input {self.input}: no such file, or a folder without files")
        if self.candidates is not None and not 1 <= self.candidates <= len(workload.all_candidates()):
            raise UsageError(
                f"--candidates must be 1 to {len(workload.all_candidates())} (the workload's candidates), "
                f"got {self.candidates}"
            )
        if self.workdir.absolute().is_relative_to(self.folder().absolute()):
            raise UsageError(
                f"--workdir {self.workdir} is inside the workload folder: its code package would take the run"
            )
        check_workdir(self.workdir)

    def folder(self) -> Path:
        """The workload's folder: --workload, else the one that cdk.json lists."""
        return workload_folder(self.workload)


def listed_workloads() -> list[Path]:
    """The workload folders that cdk.json lists."""
    listed = json.loads((REPO_ROOT / "cdk.json").read_text()).get("context", {}).get("workloads", [])
    return [REPO_ROOT / str(w) for w in listed]


def workload_folder(given: Path | None) -> Path:
    """`given`, else the one workload folder that cdk.json lists."""
    if given is not None:
        return given
    listed = listed_workloads()
    if len(listed) != 1:
        many = "lists several workloads" if listed else "lists no workload"
        raise UsageError(f"cdk.json {many}: choose one with --workload")
    return listed[0]


def check_synth_folders(folders: list[Path]) -> None:
    """The synth names workload folders in one `-c workloads=a,b` argument: a comma inside a path would split it."""
    for folder in folders:
        if "," in str(folder.absolute()):
            raise UsageError(f"{folder}: a workload folder's path may not hold a comma")


def load_workload(folder: Path) -> Any:
    """The deployable workload in `folder`; a UsageError naming the key otherwise."""
    from mlpipe.workload import WorkloadError, check_deployable, load

    try:
        workload = load(folder)
        check_deployable(workload)
    except WorkloadError as exc:
        raise UsageError(str(exc)) from None
    return workload


def input_files(path: Path) -> list[Path]:
    """The raw files under `path` (or `path` itself), hidden files left out."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        return []
    return sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
    )


def check_workdir(workdir: Path) -> None:
    if workdir.exists() and not workdir.is_dir():
        raise UsageError(f"--workdir {workdir} is a file, not a folder")
    if workdir.is_dir() and any(workdir.iterdir()) and not (workdir / RUN_FILE).exists():
        raise UsageError(
            f"--workdir {workdir} holds other files; give an empty or new folder, or a local run's"
        )


def check_redrivable(workdir: Path) -> None:
    if not (workdir / RUN_FILE).exists():
        raise UsageError(f"no local run in {workdir} (no {RUN_FILE}): start one with `mlpipe local run`")
