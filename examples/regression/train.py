"""Training for the regression example: plain PyTorch and torch.distributed, no mlpipe trainer.

mlpipe's launcher (mlpipe_batch.run) starts this script once per rank with torchrun's environment and:
MLPIPE_INPUT (the feature manifest), MLPIPE_HYPERPARAMETERS (JSON), MLPIPE_CHECKPOINT_DIR (synced with S3 by
the launcher), MLPIPE_OUTPUT_DIR (uploaded when every rank succeeded) and MLPIPE_STOP_GRACE_S. On SIGTERM
the ranks agree to stop at the same step, rank 0 saves a checkpoint and every rank exits 143; the next
attempt resumes from that checkpoint.
"""

from __future__ import annotations

import io
import json
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch
import torch.distributed as dist
from mlpipe_batch import storage  # the launcher's data helper: s3:// or local paths

DEFAULTS = {"epochs": 20, "batch_size": 256, "lr": 0.003, "hidden": [64, 64], "weight_decay": 0.0, "seed": 1}
STOPPED = 143
stop_requested = False


def on_sigterm(signum: int, frame: Any) -> None:
    global stop_requested
    stop_requested = True


def read_split(manifest: dict[str, Any], split: str) -> tuple[np.ndarray, np.ndarray]:
    """Every row of `split`: (features float32 [n, d], target float32 [n])."""
    columns = manifest["numeric_features"]
    tables = [
        pq.read_table(io.BytesIO(storage.read_bytes(s["uri"]))) for s in manifest["splits"][split]["shards"]
    ]
    x = np.concatenate([np.stack([t[c].to_numpy() for c in columns], axis=1) for t in tables]).astype(
        np.float32
    )
    y = np.concatenate([t[manifest["label_column"]].to_numpy() for t in tables]).astype(np.float32)
    return x, y


def model_for(inputs: int, hidden: list[int]) -> torch.nn.Module:
    layers: list[torch.nn.Module] = []
    for width in hidden:
        layers += [torch.nn.Linear(inputs, width), torch.nn.ReLU()]
        inputs = width
    layers.append(torch.nn.Linear(inputs, 1))
    return torch.nn.Sequential(*layers)


def any_rank(flag: bool) -> bool:
    tensor = torch.tensor([int(flag)])
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def rmse(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, rank: int, world: int) -> float:
    """RMSE over every row; each rank scores every world-th row and the sums are added up."""
    with torch.no_grad():
        part = slice(rank, None, world)
        predicted = model(torch.from_numpy(x[part])).squeeze(1)
        totals = torch.tensor(
            [float(((predicted - torch.from_numpy(y[part])) ** 2).sum()), float(len(y[part]))]
        )
    dist.all_reduce(totals)
    return math.sqrt(totals[0].item() / totals[1].item())


def save_atomically(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def main() -> int:
    signal.signal(signal.SIGTERM, on_sigterm)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    hp = {**DEFAULTS, **json.loads(os.environ.get("MLPIPE_HYPERPARAMETERS") or "{}")}
    checkpoint = Path(os.environ["MLPIPE_CHECKPOINT_DIR"]) / "checkpoint.pt"
    output = Path(os.environ["MLPIPE_OUTPUT_DIR"])
    # Imported before the group exists: this module (DDP imports it) binds the default group into default
    # arguments, which would keep the group alive past destroy_process_group to interpreter exit.
    import torch.distributed.nn.functional

    dist.init_process_group("gloo")  # reads MASTER_ADDR, MASTER_PORT, RANK and WORLD_SIZE

    manifest = json.loads(storage.read_bytes(os.environ["MLPIPE_INPUT"]))
    x, y = read_split(manifest, "train")
    x_val, y_val = read_split(manifest, "validation")
    torch.manual_seed(hp["seed"])
    model = model_for(x.shape[1], hp["hidden"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
    start_epoch, resumed_from = 0, None
    if checkpoint.exists():
        state = torch.load(checkpoint, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch = resumed_from = int(state["epoch"])

    started = time.monotonic()
    stopped = fit(model, optimizer, x, y, hp, start_epoch, checkpoint)
    if not stopped:
        validation = rmse(model, x_val, y_val, rank, world)
        if rank == 0:
            torch.save(model.state_dict(), output / "model.pt")
            (output / "model.json").write_text(json.dumps({"inputs": x.shape[1], "hidden": hp["hidden"]}))
            metrics = {
                "validation": {"rmse": validation},
                "epochs": hp["epochs"],
                "world_size": world,
                "resumed_from_epoch": resumed_from,
                "train_seconds": time.monotonic() - started,
            }
            (output / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    # The shutdown order: the last collective, then the group is destroyed while the interpreter is whole
    # (fit's DDP wrapper, which holds the group, is gone with fit's frame).
    dist.barrier()
    dist.destroy_process_group()
    return STOPPED if stopped else 0


def fit(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    x: np.ndarray,
    y: np.ndarray,
    hp: dict[str, Any],
    start_epoch: int,
    checkpoint: Path,
) -> bool:
    """Train from `start_epoch`; rank 0 checkpoints after each epoch. True when a SIGTERM stopped it."""
    rank, world = dist.get_rank(), dist.get_world_size()
    net = torch.nn.parallel.DistributedDataParallel(model)
    steps = len(y) // world // hp["batch_size"]  # the same count on every rank
    for epoch in range(start_epoch, hp["epochs"]):
        order = np.random.default_rng([hp["seed"], epoch]).permutation(len(y))[rank::world]
        for step in range(steps):
            rows = order[step * hp["batch_size"] : (step + 1) * hp["batch_size"]]
            loss = torch.nn.functional.mse_loss(
                net(torch.from_numpy(x[rows])).squeeze(1), torch.from_numpy(y[rows])
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if any_rank(stop_requested):  # every rank stops at the same step
                if (
                    rank == 0
                ):  # the weights keep this epoch's steps; a resume replays the epoch from its start
                    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch}
                    save_atomically(state, checkpoint)
                return True
        if rank == 0:
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch + 1}
            save_atomically(state, checkpoint)
    return False


if __name__ == "__main__":
    sys.exit(main())
