"""The execution input: JSON-schema validation (the schema file is shared with the client) and the checks
a schema cannot express. Every failure raises `InvalidInput` whose message names the offending field."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import fastjsonschema

from mlpipe_common.errors import InvalidInput

SCHEMA_PATH = Path(__file__).resolve().with_name("execution_input.schema.json")
# Candidate names become S3 key segments and parts of Batch job names (letters, digits, '-', '_'; <= 128).
CANDIDATE_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
CANDIDATE_NAME_MAX = 32
DEFAULT_NODES = 1
DEFAULT_GPUS = 1


@functools.cache
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


@functools.cache
def _validator(pointer: str) -> Callable[[Any], Any]:
    """A compiled validator of the whole schema ("") or of one of its definitions ("candidate")."""
    document = schema()
    if pointer:
        document = {**document["definitions"][pointer], "definitions": document["definitions"]}
    return fastjsonschema.compile(document)


def validate(document: Any, *, definition: str = "", where: str = "input") -> None:
    """Validate `document` against the schema (or one of its definitions); `InvalidInput` if it fails."""
    try:
        _validator(definition)(document)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise InvalidInput(_message(exc, where)) from None


def _message(exc: fastjsonschema.JsonSchemaValueException, where: str) -> str:
    name = exc.name or "data"
    field = where + name[len("data") :]
    definition = exc.definition if isinstance(exc.definition, dict) else {}
    description = definition.get("description")
    if exc.rule == "additionalProperties" and isinstance(exc.value, dict):
        allowed = sorted(definition.get("properties", {}))
        unknown = sorted(set(exc.value) - set(allowed))
        return f"{field}: unknown key(s) {', '.join(map(repr, unknown))}; allowed keys: {', '.join(allowed)}"
    if exc.rule == "required" and isinstance(exc.value, dict):
        missing = sorted(set(definition.get("required", [])) - set(exc.value))
        return f"{field}: missing required key(s) {', '.join(map(repr, missing))}"
    if exc.rule == "pattern" and description:
        return f"{field}: {exc.value!r} is not valid; expected {description}"
    if exc.rule == "propertyNames" and isinstance(exc.value, dict):
        names = definition.get("propertyNames", {}).get("description", "")
        return f"{field}: invalid key(s) {', '.join(map(repr, sorted(exc.value)))}; {names}".rstrip("; ")
    message = field + exc.message[len(name) :]
    if exc.rule in {"anyOf", "minLength", "maxLength"} and description:
        message += f" ({description})"
    return message


def check_candidate_names(names: Sequence[Any], *, where: str = "candidates") -> None:
    """Names must be unique and safe as S3 key segments and in Batch job names."""
    seen: set[str] = set()
    for index, name in enumerate(names):
        if not isinstance(name, str) or len(name) > CANDIDATE_NAME_MAX or not CANDIDATE_NAME.match(name):
            raise InvalidInput(
                f"{where}[{index}].name {name!r} is not a valid candidate name: use 1 to "
                f"{CANDIDATE_NAME_MAX} lowercase letters, digits and '-', "
                "starting and ending with a letter or digit"
            )
        if name in seen:
            raise InvalidInput(f"{where}[{index}].name {name!r} is used by more than one candidate")
        seen.add(name)


def normalize_candidates(
    candidates: Sequence[dict[str, Any]], *, max_candidates: int, where: str
) -> list[dict[str, Any]]:
    """Validate candidates (schema, unique names, count) and fill in the defaults."""
    for index, candidate in enumerate(candidates):
        validate(candidate, definition="candidate", where=f"{where}[{index}]")
    check_candidate_names([c["name"] for c in candidates], where=where)
    if len(candidates) > max_candidates:
        raise InvalidInput(f"{where}: {len(candidates)} candidates given, at most {max_candidates} allowed")
    return [
        {
            "name": c["name"],
            "hyperparameters": dict(c.get("hyperparameters", {})),
            "nodes": int(c.get("nodes", DEFAULT_NODES)),
            "gpus": int(c.get("gpus", DEFAULT_GPUS)),
        }
        for c in candidates
    ]
