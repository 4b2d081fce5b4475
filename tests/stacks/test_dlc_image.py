"""The memoized Deep Learning Container lookup: the same answers as the SageMaker SDK, remembered."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stacks import dlc_image


@pytest.fixture
def cache_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "build" / "dlc-image-cache.json"
    monkeypatch.setattr(dlc_image, "CACHE_FILE", path)
    monkeypatch.setattr(dlc_image, "_lookups", {})
    return path


def test_the_sdk_answers_a_miss_and_the_answer_is_remembered(cache_file: Path) -> None:
    image = dlc_image.dlc_training_image("eu-west-1", "2.8", "py312")
    assert image.endswith(".dkr.ecr.eu-west-1.amazonaws.com/pytorch-training:2.8-gpu-py312")
    entries = json.loads(cache_file.read_text())
    key = dlc_image._cache_key("eu-west-1", "2.8", "py312")
    assert entries == {key: image}
    assert key.startswith("sagemaker-core==") and "/eu-west-1/2.8/py312/" in key


def test_a_hit_is_served_from_the_cache_without_the_sdk(
    cache_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = dlc_image._cache_key("us-east-1", "2.8", "py312")
    cache_file.parent.mkdir(parents=True)
    cache_file.write_text(json.dumps({key: "example.invalid/cached:1"}))

    def no_sdk(*args: object, **kwargs: object) -> None:
        raise AssertionError("the SDK was asked although the cache had the answer")

    monkeypatch.setattr(dlc_image.subprocess, "Popen", no_sdk)
    assert dlc_image.dlc_training_image("us-east-1", "2.8", "py312") == "example.invalid/cached:1"


def test_another_sdk_version_is_a_miss(cache_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = dlc_image._cache_key("us-east-1", "2.8", "py312")
    monkeypatch.setattr(dlc_image.metadata, "version", lambda name: "0.0.1")
    assert dlc_image._cache_key("us-east-1", "2.8", "py312") != key


def test_a_failed_lookup_is_not_remembered(cache_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """(What the real SDK says about an unknown version: tests/stacks/test_guards.py.)"""
    from mlpipe.config import ConfigError

    real_popen = subprocess.Popen

    def failing_sdk(argv: list[str], **kwargs: Any) -> subprocess.Popen[str]:
        fails = "import sys; sys.exit('ValueError: Unsupported pytorch version: 9.9.')"
        return real_popen([sys.executable, "-c", fails], **kwargs)

    monkeypatch.setattr(dlc_image.subprocess, "Popen", failing_sdk)
    with pytest.raises(ConfigError, match=r"Unsupported pytorch version: 9\.9"):
        dlc_image.dlc_training_image("us-east-1", "9.9", "py312")
    assert not cache_file.exists()
    assert ("us-east-1", "9.9", "py312") not in dlc_image._lookups  # the next synth asks again


def test_a_damaged_cache_is_ignored(cache_file: Path) -> None:
    cache_file.parent.mkdir(parents=True)
    cache_file.write_text("{not json")
    assert dlc_image._read_cache() == {}
