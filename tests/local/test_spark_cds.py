"""The Spark class-data-sharing archive is mapped only while it matches this JVM and these jars, and is whole:
a JVM given a truncated archive crashes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mlpipe.local import spark_cds


def _archive(folder: Path, size: int = 1000, **record: Any) -> Path:
    archive = folder / "spark.jsa"
    archive.write_bytes(b"\0" * size)
    archive.with_suffix(".json").write_text(json.dumps({**spark_cds.fingerprint(), "size": size, **record}))
    return archive


def test_a_whole_archive_of_this_jvm_is_mapped(tmp_path: Path) -> None:
    archive = _archive(tmp_path)
    assert spark_cds.java_options(archive) == f"-XX:SharedArchiveFile={archive}"


@pytest.mark.parametrize(
    "damage",
    ["truncated", "no record", "another JVM", "other Spark jars", "no archive"],
)
def test_an_archive_that_does_not_match_is_not_used(tmp_path: Path, damage: str) -> None:
    archive = _archive(tmp_path)
    if damage == "truncated":
        archive.write_bytes(b"\0" * 999)
    elif damage == "no record":
        archive.with_suffix(".json").unlink()
    elif damage == "another JVM":
        archive = _archive(tmp_path, libjvm_size=1)
    elif damage == "other Spark jars":
        archive = _archive(tmp_path, pyspark="3.4.1")
    else:
        archive.unlink()
    assert spark_cds.java_options(archive) == ""


def test_a_failed_build_leaves_nothing_a_jvm_would_map(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fails(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        Path(argv[-1]).write_bytes(b"half an archive")  # what a JVM killed while dumping leaves
        return subprocess.CompletedProcess(argv, 1, "", "boom")

    monkeypatch.setattr(spark_cds.subprocess, "run", fails)
    with pytest.raises(RuntimeError, match="not made"):
        spark_cds.build(tmp_path / "spark.jsa")
    assert list(tmp_path.iterdir()) == []


def test_setup_made_a_usable_archive() -> None:
    assert spark_cds.usable(), f"no usable {spark_cds.ARCHIVE}: run `make setup`"
    assert spark_cds.build() is False  # nothing to do
