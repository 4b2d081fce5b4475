"""docs/configuration.md documents every key with its default, and stays current."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mlpipe.config_docs import SECTIONS, render

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_configuration_page_is_current() -> None:
    assert DOC.read_text() == render(), "run: python -m mlpipe.config_docs > docs/configuration.md"


def test_every_key_has_documentation() -> None:
    page = render()
    for section, cls in SECTIONS:
        for field in dataclasses.fields(cls):
            if dataclasses.is_dataclass(field.type) or field.name in {s for s, _ in SECTIONS}:
                continue
            key = f"{section}.{field.name}" if section else field.name
            (row,) = [line for line in page.splitlines() if line.startswith(f"| `{key}` |")]
            assert not row.endswith("|  |"), f"{key} has no documentation"
