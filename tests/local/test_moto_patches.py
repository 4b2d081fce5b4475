"""The harness validates each state machine definition once per process (moto parses it on every
create_state_machine), and an invalid one every time."""

from __future__ import annotations

import json
from typing import Any

import pytest
from moto.stepfunctions.parser.models import InvalidDefinition

from mlpipe.local import moto_patches

VALID = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})
INVALID = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "NoSuchType"}}})


def test_a_valid_definition_is_parsed_once_and_an_invalid_one_every_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parsed: list[str] = []
    original = moto_patches._original_validate_definition

    def counting(definition: str) -> Any:
        parsed.append(definition)
        return original(definition=definition)

    monkeypatch.setattr(moto_patches, "_original_validate_definition", counting)
    monkeypatch.setattr(moto_patches, "_validated", set())
    for _ in range(3):
        moto_patches._validate_definition_once(VALID)
    for _ in range(2):
        with pytest.raises(InvalidDefinition):
            moto_patches._validate_definition_once(INVALID)
    assert parsed == [VALID, INVALID, INVALID]
