"""The model (embeddings of hashed categoricals + an MLP) and its portable form, `mlpipe.model.v1`.

Portable form (docs/contracts.md): `model.json` describes the inputs and the layers, `weights.npz` holds
float32 arrays: `embedding.<feature>` [buckets, dim], `denseK.weight` [out, in], `denseK.bias` [out]. The first
layer's input is the numeric features in order, then each categorical feature's embedding row in order;
probability = sigmoid(last layer's single output). numpy alone can score it (the inference Lambda does).
"""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from mlpipe_batch import storage
from mlpipe_batch.errors import UsageError

FORMAT = "mlpipe.model.v1"


class TabularModel(nn.Module):
    """Numeric features and one embedding per categorical feature, concatenated, into a ReLU MLP -> 1 logit.

    The categorical embeddings live in one table (one lookup kernel for all features on the GPU); feature i
    owns rows [offset_i, offset_i + buckets_i). Export slices the table back into one array per feature.
    """

    def __init__(
        self,
        numeric_features: Sequence[str],
        categorical_features: Sequence[tuple[str, int]],
        *,
        embedding_dim: int,
        hidden: Sequence[int],
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.numeric_features = tuple(numeric_features)
        self.categorical_features = tuple((name, int(buckets)) for name, buckets in categorical_features)
        self.embedding_dim = int(embedding_dim)
        buckets = [b for _, b in self.categorical_features]
        self.embedding: nn.Embedding | None = None
        if buckets:
            self.embedding = nn.Embedding(sum(buckets), self.embedding_dim)
            nn.init.normal_(self.embedding.weight, std=0.1)
            starts = np.concatenate([[0], np.cumsum(buckets)[:-1]])
            self.register_buffer("offsets", torch.as_tensor(starts, dtype=torch.long), persistent=False)
        widths = [len(self.numeric_features) + len(buckets) * self.embedding_dim, *hidden, 1]
        self.dense = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        """Logits of shape [batch] from numeric [batch, F] float and categorical [batch, C] int64."""
        x = numeric
        if self.embedding is not None:
            embedded = self.embedding(categorical + self.offsets)  # [batch, C, dim]
            x = torch.cat([numeric.to(embedded.dtype), embedded.flatten(1)], dim=1)
        last = len(self.dense) - 1
        for i, layer in enumerate(self.dense):
            x = layer(x)
            if i < last:
                x = self.dropout(torch.relu(x))
        return x.squeeze(1)


def export_arrays(model: TabularModel) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The portable description (model.json) and arrays (weights.npz) of `model`."""
    state = {k: v.detach().to("cpu", torch.float32).numpy() for k, v in model.state_dict().items()}
    arrays: dict[str, np.ndarray] = {}
    categorical = []
    start = 0
    for name, buckets in model.categorical_features:
        arrays[f"embedding.{name}"] = np.ascontiguousarray(state["embedding.weight"][start : start + buckets])
        categorical.append({"name": name, "buckets": buckets, "dim": model.embedding_dim})
        start += buckets
    layers = []
    for i in range(len(model.dense)):
        arrays[f"dense{i}.weight"] = np.ascontiguousarray(state[f"dense.{i}.weight"])
        arrays[f"dense{i}.bias"] = np.ascontiguousarray(state[f"dense.{i}.bias"])
        activation = "relu" if i < len(model.dense) - 1 else "none"
        layers.append({"weight": f"dense{i}.weight", "bias": f"dense{i}.bias", "activation": activation})
    spec = {
        "format": FORMAT,
        "numeric_features": list(model.numeric_features),
        "categorical_features": categorical,
        "layers": layers,
        "output": "sigmoid",
    }
    return spec, arrays


def write_portable(model: TabularModel, prefix: str) -> None:
    """Write `<prefix>/weights.npz`, then `<prefix>/model.json` (each atomically; model.json last)."""
    spec, arrays = export_arrays(model)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    storage.write_bytes(storage.join(prefix, "weights.npz"), buffer.getvalue())
    storage.write_bytes(storage.join(prefix, "model.json"), (json.dumps(spec, indent=2) + "\n").encode())


@dataclass(frozen=True)
class PortableModel:
    uri: str
    spec: dict[str, Any]
    arrays: dict[str, np.ndarray]

    @property
    def numeric_features(self) -> list[str]:
        return list(self.spec["numeric_features"])

    @property
    def categorical_features(self) -> list[dict[str, Any]]:
        return list(self.spec["categorical_features"])


def load_portable(prefix: str) -> PortableModel:
    """Load and check a portable model from `prefix` (or from `prefix/model/`, a training output prefix)."""
    for candidate in (prefix, storage.join(prefix, "model")):
        try:
            raw = storage.read_bytes(storage.join(candidate, "model.json"))
        except storage.StorageError:
            continue
        prefix = candidate
        break
    else:
        raise UsageError(f"no model.json under {prefix} or {storage.join(prefix, 'model')}")

    def bad(what: str) -> UsageError:
        return UsageError(f"model at {prefix} is not a valid {FORMAT} model: {what}")

    try:
        spec = json.loads(raw)
        weights = storage.read_bytes(storage.join(prefix, "weights.npz"))
        with np.load(io.BytesIO(weights), allow_pickle=False) as npz:
            arrays = {key: npz[key].astype(np.float32, copy=False) for key in npz.files}
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise bad(str(exc)) from exc
    except storage.StorageError as exc:
        raise bad(str(exc)) from exc
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise bad(f"format is {spec.get('format') if isinstance(spec, dict) else None!r}")
    width = len(spec.get("numeric_features", []))
    for feature in spec.get("categorical_features", []):
        table = arrays.get(f"embedding.{feature['name']}")
        if table is None or table.shape != (feature["buckets"], feature["dim"]):
            raise bad(f"embedding.{feature['name']} is missing or not of shape [buckets, dim]")
        width += feature["dim"]
    layers = spec.get("layers") or []
    if not layers:
        raise bad("it has no layers")
    for layer in layers:
        weight, bias = arrays.get(layer.get("weight")), arrays.get(layer.get("bias"))
        if weight is None or bias is None or weight.ndim != 2 or weight.shape[1] != width:
            raise bad(f"layer {layer.get('weight')} is missing or does not take {width} inputs")
        if bias.shape != (weight.shape[0],) or layer.get("activation") not in ("relu", "none"):
            raise bad(f"layer {layer.get('weight')} has a bad bias shape or activation")
        width = weight.shape[0]
    if width != 1 or spec.get("output") != "sigmoid":
        raise bad("the last layer must have one output and the output must be 'sigmoid'")
    return PortableModel(prefix, spec, arrays)


class PortableScorer(nn.Module):
    """Scores any `mlpipe.model.v1` model with torch (on the GPU when there is one): logits [batch]."""

    def __init__(self, portable: PortableModel) -> None:
        super().__init__()
        self.tables = nn.ParameterList(
            nn.Parameter(torch.from_numpy(portable.arrays[f"embedding.{f['name']}"]), requires_grad=False)
            for f in portable.categorical_features
        )
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.relu: list[bool] = []
        for layer in portable.spec["layers"]:
            self.weights.append(
                nn.Parameter(torch.from_numpy(portable.arrays[layer["weight"]]), requires_grad=False)
            )
            self.biases.append(
                nn.Parameter(torch.from_numpy(portable.arrays[layer["bias"]]), requires_grad=False)
            )
            self.relu.append(layer["activation"] == "relu")

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        parts = [numeric.float()] + [table[categorical[:, i]] for i, table in enumerate(self.tables)]
        x = torch.cat(parts, dim=1)
        for weight, bias, relu in zip(self.weights, self.biases, self.relu, strict=True):
            x = torch.nn.functional.linear(x, weight, bias)
            if relu:
                x = torch.relu(x)
        return x.squeeze(1)
