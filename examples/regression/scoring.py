"""Loading a trained regression model and scoring feature shards: shared by evaluate.py and infer.py, so the
quality gate's figure comes from the model exactly as inference uses it.

A model folder (MLPIPE_MODEL_DIR: the files train.py wrote under `model/`) holds `model.json` (train.py's
model_spec) and `model.pt` (the state dict). The model, the shard reader and the prediction code are
train.py's own.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import torch
from mlpipe_batch import storage
from train import MODEL_FORMAT, Split, build_model, predict, read_split

__all__ = ["Split", "exit_now", "load_manifest", "load_model", "predict", "read_split", "single_rank"]


class ModelError(ValueError):
    """The model folder is not a model of this example, or it does not match the manifest's features."""


def load_manifest(uri: str) -> dict[str, Any]:
    return json.loads(storage.read_bytes(uri))


def load_model(folder: str | Path, manifest: dict[str, Any]) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The model in `folder` (on the CPU, in eval mode) and its spec; ModelError when the folder holds no
    such model or the manifest's feature columns are not the ones it was trained on."""
    folder = Path(folder)
    try:
        spec = json.loads((folder / "model.json").read_text())
    except FileNotFoundError:
        raise ModelError(f"{folder} has no model.json: not a model of train.py") from None
    if spec.get("format") != MODEL_FORMAT:
        raise ModelError(f"{folder}/model.json is {spec.get('format')!r}, not {MODEL_FORMAT}")
    for key in ("numeric_features", "categorical_features"):
        if list(manifest.get(key) or []) != spec[key]:
            raise ModelError(f"the manifest's {key} are not the ones the model was trained on")
    model = build_model(spec)
    model.load_state_dict(torch.load(folder / "model.pt", map_location="cpu", weights_only=True))
    model.eval()
    return model, spec


def single_rank() -> bool:
    """Scoring runs on rank 0 alone (the data is small next to training): True on the other ranks, which
    have nothing to do."""
    return int(os.environ.get("RANK", "0")) != 0


def exit_now(status: int) -> NoReturn:
    """End the process once its files are written and closed, without the interpreter's teardown, where Arrow's
    and torch's native thread pools can abort it after the work is done (apache/arrow#34314)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
