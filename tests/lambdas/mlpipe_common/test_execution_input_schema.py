"""The execution-input schema file itself (the client validates against the same file)."""

from __future__ import annotations

from typing import Any

import fastjsonschema
import pytest
from mlpipe_common import execution_input
from mlpipe_common.errors import InvalidInput


def object_schemas(node: Any, path: str = "$") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if isinstance(node, dict):
        if node.get("type") == "object":
            found.append((path, node))
        for key, value in node.items():
            found += object_schemas(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += object_schemas(value, f"{path}[{index}]")
    return found


def test_schema_compiles_and_is_draft_07() -> None:
    schema = execution_input.schema()
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    fastjsonschema.compile(schema)


def test_every_object_closes_its_keys() -> None:
    """additionalProperties is false everywhere, except the hyperparameters map, whose keys are free
    but constrained by propertyNames and whose values must be scalars."""
    for path, node in object_schemas(execution_input.schema()):
        if path.endswith(".hyperparameters"):
            assert node["propertyNames"]["pattern"] and node["maxProperties"] == 16
            assert node["additionalProperties"]["anyOf"]
        else:
            assert node.get("additionalProperties") is False, path


def test_minimal_and_full_inputs_validate() -> None:
    execution_input.validate({"raw_uri": "s3://raw/events/"})
    execution_input.validate(
        {
            "raw_uri": "s3://raw/events/2026/11/",
            "run_id": "nightly-2026-11-21",
            "candidates": [{"name": "mlp-1", "hyperparameters": {"lr": 0.01, "opt": "adam", "bn": True}}],
            "quality_gate": {"threshold": 0.75},
            "features": {"target_shard_mb": 64},
            "inference_input_uri": "s3://curated/events/dt=2026-11-20/",
        }
    )


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "input must be object"),
        ({}, "input: missing required key(s) 'raw_uri'"),
        ({"raw_uri": "s3://raw/events/", "bucket": "x"}, "input: unknown key(s) 'bucket'"),
        (
            {"raw_uri": "s3://raw/events"},
            "input.raw_uri: 's3://raw/events' is not valid; expected an s3:// prefix",
        ),
        ({"raw_uri": "s3://raw/events/", "run_id": "Run_1"}, "input.run_id: 'Run_1' is not valid"),
        ({"raw_uri": "s3://raw/events/", "candidates": []}, "input.candidates must contain at least 1 items"),
        (
            {"raw_uri": "s3://raw/events/", "quality_gate": {"threshold": "high"}},
            "input.quality_gate.threshold must be number",
        ),
        ({"raw_uri": "s3://raw/events/", "quality_gate": {}}, "input.quality_gate: missing required key(s)"),
        (
            {"raw_uri": "s3://raw/events/", "features": {"target_shard_mb": 4}},
            "input.features.target_shard_mb must be bigger",
        ),
    ],
)
def test_invalid_inputs_name_the_field(document: Any, message: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        execution_input.validate(document)
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize(
    "value",
    ['say "hi"', "back\\slash", "x" * 129, "é", list(range(9))],
)
def test_hyperparameter_values_stay_within_what_the_batch_command_can_carry(value: object) -> None:
    # stacks/guards.py bounds the container command from these limits (quote and backslash would be escaped).
    with pytest.raises(InvalidInput):
        execution_input.validate(
            {"raw_uri": "s3://raw/events/", "candidates": [{"name": "a", "hyperparameters": {"v": value}}]}
        )
