"""Training for the regression example: plain PyTorch and torch.distributed, no mlpipe trainer.

mlpipe's launcher (mlpipe_batch.run) starts this script once per rank with torchrun's environment and:
MLPIPE_INPUT (the training feature manifest, mlpipe.features.v1), MLPIPE_HYPERPARAMETERS (JSON),
MLPIPE_CHECKPOINT_DIR (synced with S3 by the launcher), MLPIPE_OUTPUT_DIR (uploaded when every rank
succeeded) and MLPIPE_STOP_GRACE_S.

Output contract: rank 0 writes the model under `MLPIPE_OUTPUT_DIR/model/` (`model.pt`, the state dict, and
`model.json`, its architecture, feature lists and target scaling: what scoring.py loads for evaluate.py and
infer.py) and then `MLPIPE_OUTPUT_DIR/metrics.json` = `{"validation": {"rmse": float}, ...}`, the RMSE on
the manifest's validation split in the label's units (model selection reads it).

The model: an MLP over the standardized numeric features and one small embedding per categorical feature
(the manifest's `cat_*` columns, if any), trained with AdamW on the standardized target and a cosine
learning rate, DDP across every rank (NCCL on GPUs, gloo on CPUs). On SIGTERM the ranks agree to stop at the
same step, rank 0 saves a checkpoint and every rank exits 143; the next attempt resumes from that checkpoint.

This file is self-contained on purpose (tests run it alone in a code package); scoring.py imports its
model and data helpers so that training, evaluation and inference share one definition.
"""

from __future__ import annotations

import io
import json
import math
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch
import torch.distributed as dist
from mlpipe_batch import storage  # the launcher's data helper: s3:// or local paths

DEFAULTS: dict[str, Any] = {
    "epochs": 20,
    "batch_size": 256,
    "lr": 0.003,
    "min_lr_fraction": 0.05,  # the cosine schedule ends at lr * this
    "hidden": [64, 64],
    "embedding_dim": 4,
    "weight_decay": 0.0,
    "seed": 1,
    # Intra-op threads of a rank on a CPU: this MLP's matrices are too small to split (measured on 2 cores,
    # 120k rows: 11 s with 1 thread, 90 s with 2).
    "cpu_threads": 1,
}
MODEL_FORMAT = "mlpipe.examples.regression.mlp.v1"
STOPPED = 143
stop_requested = False


def on_sigterm(signum: int, frame: Any) -> None:
    global stop_requested
    stop_requested = True


@dataclass
class Split:
    """Rows of one split: float32 numerics [n, d], int64 categoricals [n, k], float32 label [n] or None,
    ids (strings) or None."""

    numeric: np.ndarray
    categorical: np.ndarray
    label: np.ndarray | None
    ids: list[str] | None


def categorical_features(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return list(manifest.get("categorical_features") or [])


def read_split(manifest: dict[str, Any], split: str, *, label: bool = True, ids: bool = False) -> Split:
    """Every row of `split`, in shard order."""
    numeric_columns = list(manifest["numeric_features"])
    categorical_columns = [c["name"] for c in categorical_features(manifest)]
    # Single-threaded: Arrow's reader threads can abort the interpreter at exit (apache/arrow#34314).
    tables = [
        pq.read_table(io.BytesIO(storage.read_bytes(s["uri"])), use_threads=False)
        for s in manifest["splits"][split]["shards"]
    ]
    rows = sum(t.num_rows for t in tables)

    def stacked(columns: list[str], dtype: Any) -> np.ndarray:
        if not tables or not columns:
            return np.zeros((rows, len(columns)), dtype=dtype)
        return np.concatenate(
            [np.stack([t[c].to_numpy().astype(dtype) for c in columns], axis=1) for t in tables]
        )

    return Split(
        numeric=stacked(numeric_columns, np.float32),
        categorical=stacked(categorical_columns, np.int64),
        label=stacked([manifest["label_column"]], np.float32)[:, 0] if label else None,
        ids=[i for t in tables for i in t[manifest["id_column"]].to_pylist()] if ids else None,
    )


class Regressor(torch.nn.Module):
    """An MLP over the numeric features and one embedding per categorical feature; predicts the standardized
    target."""

    def __init__(self, numeric: int, buckets: list[int], hidden: list[int], embedding_dim: int) -> None:
        super().__init__()
        self.embeddings = torch.nn.ModuleList(torch.nn.Embedding(b, min(embedding_dim, b)) for b in buckets)
        width = numeric + sum(e.embedding_dim for e in self.embeddings)
        layers: list[torch.nn.Module] = []
        for size in hidden:
            layers += [torch.nn.Linear(width, size), torch.nn.ReLU()]
            width = size
        layers.append(torch.nn.Linear(width, 1))
        self.mlp = torch.nn.Sequential(*layers)

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        parts = [numeric, *(e(categorical[:, i]) for i, e in enumerate(self.embeddings))]
        return self.mlp(torch.cat(parts, dim=1)).squeeze(1)


def model_spec(manifest: dict[str, Any], hp: dict[str, Any], target: np.ndarray) -> dict[str, Any]:
    """What model.json records: enough to rebuild the model and check a manifest's features against it."""
    return {
        "format": MODEL_FORMAT,
        "numeric_features": list(manifest["numeric_features"]),
        "categorical_features": categorical_features(manifest),
        "label_column": manifest["label_column"],
        "hidden": list(hp["hidden"]),
        "embedding_dim": int(hp["embedding_dim"]),
        # The network predicts (y - mean) / std: the scale is part of the model.
        "target_mean": float(target.mean()),
        "target_std": float(target.std()) or 1.0,
    }


def build_model(spec: dict[str, Any]) -> Regressor:
    return Regressor(
        len(spec["numeric_features"]),
        [int(c["buckets"]) for c in spec["categorical_features"]],
        list(spec["hidden"]),
        int(spec["embedding_dim"]),
    )


def predict(
    model: torch.nn.Module, spec: dict[str, Any], split: Split, device: torch.device, batch: int = 65_536
) -> np.ndarray:
    """Predictions in the label's units (float64), in row order."""
    out = []
    with torch.no_grad():
        for start in range(0, len(split.numeric), batch):
            numeric = torch.from_numpy(split.numeric[start : start + batch]).to(device)
            categorical = torch.from_numpy(split.categorical[start : start + batch]).to(device)
            out.append(model(numeric, categorical).double().cpu().numpy())
    scaled = np.concatenate(out) if out else np.zeros(0)
    return scaled * spec["target_std"] + spec["target_mean"]


def device_and_backend() -> tuple[torch.device, str]:
    """One GPU per rank (NCCL) when the node has them, else the CPU (gloo)."""
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local), "nccl"
    return torch.device("cpu"), "gloo"


def any_rank(flag: bool, device: torch.device) -> bool:
    tensor = torch.tensor([int(flag)], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def rmse(
    model: torch.nn.Module, spec: dict[str, Any], split: Split, device: torch.device, rank: int, world: int
) -> float:
    """RMSE over every row, in the label's units; each rank scores every world-th row and the sums are
    added up."""
    assert split.label is not None
    part = slice(rank, None, world)
    rows = Split(split.numeric[part], split.categorical[part], split.label[part], None)
    assert rows.label is not None
    error = predict(model, spec, rows, device) - rows.label.astype(np.float64)
    totals = torch.tensor([float((error**2).sum()), float(len(error))], dtype=torch.float64, device=device)
    dist.all_reduce(totals)
    return math.sqrt(totals[0].item() / max(totals[1].item(), 1.0))


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

    device, backend = device_and_backend()
    if device.type == "cpu":
        torch.set_num_threads(int(hp["cpu_threads"]))
    dist.init_process_group(backend)  # reads MASTER_ADDR, MASTER_PORT, RANK and WORLD_SIZE

    manifest = json.loads(storage.read_bytes(os.environ["MLPIPE_INPUT"]))
    train, validation = read_split(manifest, "train"), read_split(manifest, "validation")
    assert train.label is not None
    spec = model_spec(manifest, hp, train.label)
    torch.manual_seed(hp["seed"])  # the same initial weights on every rank
    model = build_model(spec).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
    start_epoch, resumed_from = 0, None
    if checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch = resumed_from = int(state["epoch"])

    started = time.monotonic()
    stopped = fit(model, optimizer, train, spec, hp, start_epoch, checkpoint, device)
    if not stopped:
        validation_rmse = rmse(model, spec, validation, device, rank, world)
        if rank == 0:
            (output / "model").mkdir(parents=True, exist_ok=True)
            torch.save({k: v.cpu() for k, v in model.state_dict().items()}, output / "model" / "model.pt")
            (output / "model" / "model.json").write_text(json.dumps(spec, indent=2) + "\n")
            metrics = {
                "validation": {"rmse": validation_rmse},
                "rows": {"train": len(train.numeric), "validation": len(validation.numeric)},
                "epochs": hp["epochs"],
                "hyperparameters": hp,
                "world_size": world,
                "device": device.type,
                "resumed_from_epoch": resumed_from,
                "train_seconds": time.monotonic() - started,
            }
            (output / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")  # last: the marker
    # The shutdown order: the last collective, then the group is destroyed while the interpreter is whole
    # (fit's DDP wrapper, which holds the group, is gone with fit's frame).
    dist.barrier()
    dist.destroy_process_group()
    return STOPPED if stopped else 0


def fit(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    train: Split,
    spec: dict[str, Any],
    hp: dict[str, Any],
    start_epoch: int,
    checkpoint: Path,
    device: torch.device,
) -> bool:
    """Train from `start_epoch`; rank 0 checkpoints after each epoch. True when a SIGTERM stopped it."""
    rank, world = dist.get_rank(), dist.get_world_size()
    net = torch.nn.parallel.DistributedDataParallel(model)
    assert train.label is not None
    target = ((train.label - spec["target_mean"]) / spec["target_std"]).astype(np.float32)
    batch = int(hp["batch_size"])
    steps = len(target) // world // batch  # the same count on every rank
    total = max(1, steps * int(hp["epochs"]))
    for epoch in range(start_epoch, hp["epochs"]):
        order = np.random.default_rng([hp["seed"], epoch]).permutation(len(target))[rank::world]
        for step in range(steps):
            # The learning rate is a function of the global step alone, so a resumed run follows the same one.
            progress = (epoch * steps + step) / total
            floor = hp["min_lr_fraction"]
            for group in optimizer.param_groups:
                group["lr"] = hp["lr"] * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))
            rows = order[step * batch : (step + 1) * batch]
            predicted = net(
                torch.from_numpy(train.numeric[rows]).to(device),
                torch.from_numpy(train.categorical[rows]).to(device),
            )
            loss = torch.nn.functional.mse_loss(predicted, torch.from_numpy(target[rows]).to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if any_rank(stop_requested, device):  # every rank stops at the same step
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
