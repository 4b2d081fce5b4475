"""The portable model `mlpipe.model.v1` (contracts.md), loaded and scored with numpy only.

The training container exports `model.json` and `weights.npz` under `<output>/model/`; the inference Lambda
scores with this module and the container's export test uses it to check parity with PyTorch. The forward
pass: the input row is the numeric features in order, then each categorical feature's embedding row in
order; each layer computes `x @ weight.T + bias` (PyTorch `Linear` convention) and its activation; the last
layer has one output and probability = sigmoid(logit). Computation is in float64.

This module depends on numpy alone (no boto3), so any Python environment with numpy can import it.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np
import numpy.typing as npt

from mlpipe_common.errors import ModelArtifactError

FORMAT = "mlpipe.model.v1"
MODEL_JSON = "model.json"
WEIGHTS_NPZ = "weights.npz"
ACTIVATIONS = ("relu", "none")

FloatArray = npt.NDArray[np.float64]


class ModelFormatError(ModelArtifactError, ValueError):
    """model.json or weights.npz does not follow `mlpipe.model.v1`."""


@dataclass(frozen=True)
class CategoricalFeature:
    name: str
    buckets: int
    dim: int


@dataclass(frozen=True)
class DenseLayer:
    weight: FloatArray  # [out, in]
    bias: FloatArray  # [out]
    activation: str


@dataclass(frozen=True)
class PortableModel:
    numeric_features: tuple[str, ...]
    categorical_features: tuple[CategoricalFeature, ...]
    embeddings: Mapping[str, FloatArray]
    layers: tuple[DenseLayer, ...]

    # -- loading -------------------------------------------------------------------------------------------
    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], weights: Mapping[str, npt.ArrayLike]) -> PortableModel:
        """Build and validate a model from the parsed `model.json` and the arrays of `weights.npz`."""
        if not isinstance(spec, Mapping) or spec.get("format") != FORMAT:
            raise ModelFormatError(f"model.json: format must be {FORMAT!r}")
        if spec.get("output") != "sigmoid":
            raise ModelFormatError("model.json: output must be 'sigmoid'")
        numeric = spec.get("numeric_features", [])
        if not isinstance(numeric, list) or not all(isinstance(n, str) for n in numeric):
            raise ModelFormatError("model.json: numeric_features must be a list of names")
        categorical = tuple(_categorical(c) for c in spec.get("categorical_features", []))
        names = [*numeric, *(c.name for c in categorical)]
        if len(set(names)) != len(names):
            raise ModelFormatError("model.json: feature names must be unique")

        embeddings: dict[str, FloatArray] = {}
        for feature in categorical:
            table = _array(weights, f"embedding.{feature.name}")
            if table.shape != (feature.buckets, feature.dim):
                raise ModelFormatError(
                    f"weights.npz: embedding.{feature.name} has shape {table.shape}, "
                    f"expected {(feature.buckets, feature.dim)}"
                )
            embeddings[feature.name] = table

        layer_specs = spec.get("layers")
        if not isinstance(layer_specs, list) or not layer_specs:
            raise ModelFormatError("model.json: layers must be a non-empty list")
        width = len(numeric) + sum(c.dim for c in categorical)
        layers: list[DenseLayer] = []
        for index, layer in enumerate(layer_specs):
            if not isinstance(layer, Mapping) or layer.get("activation") not in ACTIVATIONS:
                raise ModelFormatError(f"model.json: layers[{index}].activation must be one of {ACTIVATIONS}")
            weight = _array(weights, str(layer.get("weight")))
            bias = _array(weights, str(layer.get("bias")))
            if weight.ndim != 2 or weight.shape[1] != width or bias.shape != (weight.shape[0],):
                raise ModelFormatError(
                    f"layers[{index}]: weight {weight.shape} and bias {bias.shape} do not fit an input of "
                    f"width {width} (weight must be [out, {width}], bias [out])"
                )
            layers.append(DenseLayer(weight, bias, str(layer["activation"])))
            width = weight.shape[0]
        if width != 1:
            raise ModelFormatError(f"model.json: the last layer must have 1 output, not {width}")
        return cls(tuple(numeric), categorical, embeddings, tuple(layers))

    @classmethod
    def from_bytes(cls, model_json: bytes, weights_npz: bytes) -> PortableModel:
        try:
            spec = json.loads(model_json)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelFormatError(f"model.json is not valid JSON: {exc}") from None
        try:
            with np.load(io.BytesIO(weights_npz), allow_pickle=False) as npz:
                weights = {name: npz[name] for name in npz.files}
        except (OSError, ValueError) as exc:
            raise ModelFormatError(f"weights.npz is not a readable .npz archive: {exc}") from None
        return cls.from_spec(spec, weights)

    @classmethod
    def load(cls, directory: str | Path) -> PortableModel:
        """Load from a local `model/` directory holding model.json and weights.npz."""
        directory = Path(directory)
        return cls.from_bytes((directory / MODEL_JSON).read_bytes(), (directory / WEIGHTS_NPZ).read_bytes())

    # -- scoring -------------------------------------------------------------------------------------------
    @property
    def input_columns(self) -> tuple[str, ...]:
        """Every column the model reads, numeric then categorical."""
        return (*self.numeric_features, *(c.name for c in self.categorical_features))

    def logits(self, columns: Mapping[str, npt.ArrayLike]) -> FloatArray:
        """Logits of the rows given as one 1-D array per input column (a dict of numpy arrays or lists)."""
        missing = [name for name in self.input_columns if name not in columns]
        if missing:
            raise ValueError(f"missing input columns: {missing}")
        arrays = [np.asarray(columns[name], dtype=np.float64) for name in self.numeric_features]
        rows = _row_count(columns, self.input_columns)
        parts: list[FloatArray] = [np.stack(arrays, axis=1) if arrays else np.zeros((rows, 0))]
        for feature in self.categorical_features:
            index = np.asarray(columns[feature.name])
            if index.ndim != 1 or not np.issubdtype(index.dtype, np.integer):
                raise ValueError(f"categorical feature {feature.name} must be a 1-D integer column")
            if index.size and (index.min() < 0 or index.max() >= feature.buckets):
                raise ValueError(
                    f"categorical feature {feature.name} has bucket indices outside [0, {feature.buckets})"
                )
            parts.append(self.embeddings[feature.name][index])
        x = np.concatenate(parts, axis=1)
        for layer in self.layers:
            x = x @ layer.weight.T + layer.bias
            if layer.activation == "relu":
                x = np.maximum(x, 0.0)
        return x[:, 0]

    def predict_proba(self, columns: Mapping[str, npt.ArrayLike]) -> FloatArray:
        return sigmoid(self.logits(columns))


def sigmoid(x: FloatArray) -> FloatArray:
    """Numerically stable logistic function."""
    return np.exp(-np.logaddexp(0.0, -x))


def _categorical(raw: Any) -> CategoricalFeature:
    if not isinstance(raw, Mapping):
        raise ModelFormatError("model.json: each categorical feature must be an object")
    name, buckets, dim = raw.get("name"), raw.get("buckets"), raw.get("dim")
    if not isinstance(name, str) or not _positive_int(buckets) or not _positive_int(dim):
        raise ModelFormatError(
            f"model.json: categorical feature {raw!r} needs a name, buckets >= 1, dim >= 1"
        )
    return CategoricalFeature(name, buckets, dim)


def _positive_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _array(weights: Mapping[str, npt.ArrayLike], name: str) -> FloatArray:
    if name not in weights:
        raise ModelFormatError(f"weights.npz has no array {name!r}")
    array = np.asarray(weights[name], dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise ModelFormatError(f"weights.npz: {name} has non-finite values")
    return array


def _row_count(columns: Mapping[str, npt.ArrayLike], names: tuple[str, ...]) -> int:
    lengths = {name: len(np.asarray(columns[name])) for name in names}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"input columns have different lengths: {lengths}")
    return next(iter(lengths.values()), 0)
