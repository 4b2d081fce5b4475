"""The numpy scorer of `mlpipe.model.v1` against hand-computed examples."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mlpipe_common.portable_model import ModelFormatError, PortableModel, sigmoid


def spec(layers: list[dict[str, str]], **overrides: Any) -> dict[str, Any]:
    return {
        "format": "mlpipe.model.v1",
        "numeric_features": ["a", "b"],
        "categorical_features": [{"name": "c", "buckets": 3, "dim": 1}],
        "layers": layers,
        "output": "sigmoid",
        **overrides,
    }


LINEAR = [{"weight": "dense0.weight", "bias": "dense0.bias", "activation": "none"}]
LINEAR_WEIGHTS = {
    "embedding.c": np.array([[0.0], [1.0], [-1.0]], dtype=np.float32),
    "dense0.weight": np.array([[1.0, -1.0, 2.0]], dtype=np.float32),
    "dense0.bias": np.array([0.5], dtype=np.float32),
}


def test_single_linear_layer_matches_hand_computation() -> None:
    model = PortableModel.from_spec(spec(LINEAR), LINEAR_WEIGHTS)
    # row 1: 1 - 2 + 2 * embedding[1] (= 1) + 0.5 = 1.5;  row 2: 0 - 0 + 2 * embedding[2] (= -1) + 0.5 = -1.5
    probabilities = model.predict_proba({"a": [1.0, 0.0], "b": [2.0, 0.0], "c": np.array([1, 2])})
    assert probabilities == pytest.approx([1 / (1 + math.exp(-1.5)), 1 / (1 + math.exp(1.5))], abs=1e-12)


def test_hidden_relu_layer_matches_hand_computation() -> None:
    layers = [
        {"weight": "dense0.weight", "bias": "dense0.bias", "activation": "relu"},
        {"weight": "dense1.weight", "bias": "dense1.bias", "activation": "none"},
    ]
    weights = {
        "embedding.c": np.array([[0.0], [1.0], [-1.0]]),
        "dense0.weight": np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
        "dense0.bias": np.array([0.0, -1.0]),
        "dense1.weight": np.array([[2.0, 3.0]]),
        "dense1.bias": np.array([-1.0]),
    }
    model = PortableModel.from_spec(spec(layers), weights)
    # h = relu([-1, 2 - 1]) = [0, 1]; logit = 2 * 0 + 3 * 1 - 1 = 2
    logits = model.logits({"a": [-1.0], "b": [2.0], "c": np.array([0])})
    assert logits == pytest.approx([2.0])
    assert model.predict_proba({"a": [-1.0], "b": [2.0], "c": np.array([0])}) == pytest.approx(
        [0.8807970779778823]
    )


def test_load_from_directory_round_trips_the_files(tmp_path: Path) -> None:
    (tmp_path / "model.json").write_text(json.dumps(spec(LINEAR)))
    np.savez(tmp_path / "weights.npz", **LINEAR_WEIGHTS)
    model = PortableModel.load(tmp_path)
    assert model.input_columns == ("a", "b", "c")
    assert model.logits({"a": [1.0], "b": [2.0], "c": np.array([1])}) == pytest.approx([1.5])


def test_sigmoid_is_stable_at_extremes() -> None:
    assert sigmoid(np.array([-1000.0, 0.0, 1000.0])) == pytest.approx([0.0, 0.5, 1.0])


@pytest.mark.parametrize(
    ("model_spec", "weights", "message"),
    [
        (spec(LINEAR, format="mlpipe.model.v2"), LINEAR_WEIGHTS, "format must be"),
        (spec(LINEAR, output="softmax"), LINEAR_WEIGHTS, "output must be 'sigmoid'"),
        (
            spec([{"weight": "dense0.weight", "bias": "dense0.bias", "activation": "tanh"}]),
            LINEAR_WEIGHTS,
            "activation must be one of",
        ),
        (
            spec(LINEAR),
            {**LINEAR_WEIGHTS, "dense0.weight": np.ones((1, 4))},
            "do not fit an input of width 3",
        ),
        (spec(LINEAR), {**LINEAR_WEIGHTS, "embedding.c": np.ones((2, 1))}, "expected (3, 1)"),
        (
            spec(LINEAR),
            {k: v for k, v in LINEAR_WEIGHTS.items() if k != "dense0.bias"},
            "no array 'dense0.bias'",
        ),
        (
            spec(LINEAR),
            {**LINEAR_WEIGHTS, "dense0.weight": np.ones((2, 3)), "dense0.bias": np.ones(2)},
            "1 output",
        ),
        (spec(LINEAR), {**LINEAR_WEIGHTS, "dense0.bias": np.array([np.nan])}, "non-finite"),
    ],
)
def test_malformed_models_are_rejected(
    model_spec: dict[str, Any], weights: dict[str, Any], message: str
) -> None:
    with pytest.raises(ModelFormatError, match=message.replace("(", r"\(").replace(")", r"\)")):
        PortableModel.from_spec(model_spec, weights)


def test_from_bytes_rejects_garbage() -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **LINEAR_WEIGHTS)
    with pytest.raises(ModelFormatError, match=r"not valid JSON"):
        PortableModel.from_bytes(b"{", buffer.getvalue())
    with pytest.raises(ModelFormatError, match=r"not a readable .npz"):
        PortableModel.from_bytes(json.dumps(spec(LINEAR)).encode(), b"not a zip")


def test_bucket_index_out_of_range_is_an_error() -> None:
    model = PortableModel.from_spec(spec(LINEAR), LINEAR_WEIGHTS)
    with pytest.raises(ValueError, match=r"outside \[0, 3\)"):
        model.predict_proba({"a": [0.0], "b": [0.0], "c": np.array([3])})
    with pytest.raises(ValueError, match=r"missing input columns"):
        model.predict_proba({"a": [0.0], "c": np.array([0])})
