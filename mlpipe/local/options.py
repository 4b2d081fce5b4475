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

    def validate(self) -> None:
        if not MIN_ROWS <= self.rows <= MAX_ROWS:
            raise UsageError(f"--rows must be {MIN_ROWS:,} to {MAX_ROWS:,}, got {self.rows:,}")
        if not 1 <= self.candidates <= len(LOCAL_CANDIDATES):
            raise UsageError(f"--candidates must be 1 to {len(LOCAL_CANDIDATES)}, got {self.candidates}")
        check_workdir(self.workdir)


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
