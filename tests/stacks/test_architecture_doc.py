"""docs/architecture.md is drawn from the synthesized app and stays current."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlpipe.architecture import render

pytestmark = pytest.mark.xdist_group("cdk")
DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def test_architecture_page_is_current(dev: Any) -> None:
    assert DOC.read_text() == render(dev.outdir), "run: make synth && python -m mlpipe.architecture cdk.out"


def test_picture_shows_every_parallel_state_and_integration(dev: Any) -> None:
    page = render(dev.outdir)
    for text in (
        "PrepareData (Parallel)",
        "TrainAndPrepareInference (Parallel)",
        "Publish (Parallel)",
        "glue startJobRun.sync",
        "elasticmapreduce addStep.sync",
        "batch submitJob.sync",
    ):
        assert text in page
