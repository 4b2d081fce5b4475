"""Training checkpoints under one prefix (S3 or local), written atomically, newest found by listing.

A checkpoint is two objects: `ckpt-<global step>.pt` (torch.save of model, optimizer and scheduler state)
and then `ckpt-<global step>.json` (where training stands, and what it was trained with). Each is written
whole (one S3 PUT, or a local rename), and the .json only after its .pt: a listed .json always has its
complete .pt, so the newest .json is the checkpoint to resume from. Only rank 0 writes.
"""

from __future__ import annotations

import io
import json
import re
import time
from typing import Any

from mlpipe_batch import storage
from mlpipe_batch.errors import UsageError
from mlpipe_batch.hyperparams import OPERATIONAL, HyperParameters

FORMAT = "mlpipe.checkpoint.v1"
_NAME = re.compile(r"^ckpt-(\d{12})\.json$")


class CheckpointStore:
    def __init__(self, prefix: str, keep: int) -> None:
        self.prefix = prefix
        self.keep = keep

    def _uri(self, step: int, suffix: str) -> str:
        return storage.join(self.prefix, f"ckpt-{step:012d}.{suffix}")

    def steps(self) -> list[int]:
        return sorted(int(m.group(1)) for name in storage.list_names(self.prefix) if (m := _NAME.match(name)))

    def latest(self) -> dict[str, Any] | None:
        """The newest checkpoint's metadata (with its `uri`), or None when there is none."""
        steps = self.steps()
        if not steps:
            return None
        meta_uri = self._uri(steps[-1], "json")
        meta = json.loads(storage.read_bytes(meta_uri))
        if meta.get("format") != FORMAT:
            raise UsageError(f"{meta_uri} is not a {FORMAT} checkpoint; use an empty --checkpoint prefix")
        meta["uri"] = self._uri(steps[-1], "pt")
        return meta

    def save(self, state: dict[str, Any], meta: dict[str, Any]) -> str:
        import torch

        step = int(meta["global_step"])
        buffer = io.BytesIO()
        torch.save(state, buffer)
        uri = self._uri(step, "pt")
        storage.write_bytes(uri, buffer.getvalue())
        doc = {"format": FORMAT, **meta, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        storage.write_bytes(self._uri(step, "json"), (json.dumps(doc, indent=2) + "\n").encode())
        for old in self.steps()[: -self.keep]:
            storage.delete(self._uri(old, "json"))  # metadata first: never a listed .json without its .pt
            storage.delete(self._uri(old, "pt"))
        return uri

    @staticmethod
    def load(meta: dict[str, Any]) -> dict[str, Any]:
        import torch

        raw = storage.read_bytes(meta["uri"])
        state: dict[str, Any] = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
        return state


def check_compatible(
    meta: dict[str, Any], hp: HyperParameters, manifest_fingerprint: str, prefix: str
) -> None:
    """Resuming is only sound with the same data and the same learning-relevant hyperparameters."""
    if meta.get("manifest_fingerprint") != manifest_fingerprint:
        raise UsageError(
            f"the checkpoint under {prefix} was written for another manifest "
            f"(run {meta.get('manifest_run_id')!r}); pass a fresh --checkpoint prefix to start over"
        )
    saved = meta.get("hyperparameters", {})
    current = hp.to_dict()
    changed = sorted(k for k in current if k not in OPERATIONAL and saved.get(k) != current[k])
    if changed:
        diffs = ", ".join(f"{k}: {saved.get(k)!r} -> {current[k]!r}" for k in changed)
        raise UsageError(
            f"the checkpoint under {prefix} was trained with other hyperparameters ({diffs}); "
            "pass the same ones to resume, or a fresh --checkpoint prefix to start over"
        )
