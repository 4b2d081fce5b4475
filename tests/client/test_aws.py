"""The client's boto3 sessions: botocore's service models and endpoint data are parsed once per process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.loaders import JSONFileLoader

from mlpipe.client.aws import Aws


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The data files botocore parses from now on."""
    seen: list[str] = []
    parse = JSONFileLoader.load_file

    def counting(self: JSONFileLoader, file_path: str) -> Any:
        seen.append(file_path)
        return parse(self, file_path)

    monkeypatch.setattr(JSONFileLoader, "load_file", counting)
    return seen


def test_a_new_session_parses_nothing_again_and_keeps_its_own_settings(
    reads: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    Aws(region="us-east-1").client("stepfunctions")  # parsed here, or earlier in this process
    reads.clear()
    other = Aws(region="eu-west-1").client("stepfunctions")
    assert reads == []
    assert other.meta.region_name == "eu-west-1"
    assert other.meta.endpoint_url == "https://states.eu-west-1.amazonaws.com"
    # another data path (AWS_DATA_PATH) is another loader: its sessions parse their own files
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    Aws(region="us-east-1").client("stepfunctions")
    assert any("endpoints" in path for path in reads) and any("stepfunctions" in path for path in reads)
