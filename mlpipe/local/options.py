"""The options of `mlpipe local run` and `redrive`, and their checks: light to import (no moto, no Spark),
so that bad arguments are refused at once, before any work."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlpipe.cli import UsageError

RUN_FILE = "run.json"
DEFAULT_ROWS = 600_000
MIN_ROWS = 50_000  # below this the candidates can miss the dev quality gate (test AUC 0.70)
MAX_ROWS = 100_000_000
SEED = 7

# Candidates of local runs: `--candidates K` takes the first K. The second is a two-node DDP job (the
# multi-node job definition, run as two local worker processes). Regularized for the reference workload,
# whose user and item effects overfit with the container's defaults on a few hundred thousand rows.
LOCAL_CANDIDATES: tuple[Mapping[str, Any], ...] = (
    {
        "name": "baseline",
        "hyperparameters": {"lr": 0.001, "epochs": 2, "embedding_dim": 4, "weight_decay": 0.05},
    },
    {
        "name": "ddp-2-nodes",
        "hyperparameters": {"lr": 0.002, "epochs": 2, "embedding_dim": 4, "dropout": 0.3},
        "nodes": 2,
    },
    {"name": "emb8", "hyperparameters": {"lr": 0.0007, "epochs": 3, "embedding_dim": 8, "weight_decay": 0.1}},
    {"name": "emb2", "hyperparameters": {"lr": 0.001, "epochs": 3, "embedding_dim": 2, "hidden": [128, 64]}},
    {
        "name": "batch2k",
        "hyperparameters": {
            "lr": 0.001,
            "epochs": 3,
            "batch_size": 2048,
            "embedding_dim": 4,
            "weight_decay": 0.02,
        },
    },
    {
        "name": "emb4-3ep",
        "hyperparameters": {"lr": 0.001, "epochs": 3, "embedding_dim": 4, "weight_decay": 0.01},
    },
    {
        "name": "slow",
        "hyperparameters": {"lr": 0.0005, "epochs": 4, "embedding_dim": 4, "weight_decay": 0.05},
    },
    {
        "name": "wide",
        "hyperparameters": {
            "lr": 0.001,
            "epochs": 2,
            "embedding_dim": 4,
            "hidden": [512, 256],
            "dropout": 0.2,
        },
    },
)


@dataclass(frozen=True)
class Options:
    rows: int = DEFAULT_ROWS
    candidates: int = 2
    workdir: Path = Path("local-run")
    seed: int = SEED
    workload: Path | None = None
    """A workload folder to run instead of cdk.json's: its own candidates, on `input`."""
    input: Path | None = None
    """Raw files (a file, or a folder of them) to run on instead of generated click events."""

    def validate(self) -> None:
        if not MIN_ROWS <= self.rows <= MAX_ROWS:
            raise UsageError(f"--rows must be {MIN_ROWS:,} to {MAX_ROWS:,}, got {self.rows:,}")
        if not 1 <= self.candidates <= len(LOCAL_CANDIDATES):
            raise UsageError(f"--candidates must be 1 to {len(LOCAL_CANDIDATES)}, got {self.candidates}")
        workload = load_workload(self.workload) if self.workload is not None else None
        if workload is not None and self.input is None and not workload.raw.sample:
            raise UsageError(
                "--workload needs --input (the raw files to run it on), or raw.sample in its workload.toml"
            )
        if self.input is not None and not input_files(self.input):
            raise UsageError(f"--input {self.input}: no such file, or a folder without files")
        check_workdir(self.workdir)

    def raw_input(self) -> Path | None:
        """The raw files to run on: --input, else the workload's sample, else None (generate click events)."""
        if self.input is not None or self.workload is None:
            return self.input
        sample: str = load_workload(self.workload).raw.sample
        return Path(self.workload) / sample


def load_workload(folder: Path) -> Any:
    """The deployable workload in `folder`; a UsageError naming the key otherwise."""
    from mlpipe.workload import WorkloadError, check_deployable, load

    try:
        workload = load(folder)
        check_deployable(workload, f"{folder}/workload.toml")
    except WorkloadError as exc:
        raise UsageError(f"--workload: {exc}") from None
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
