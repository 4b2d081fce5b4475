"""Test double of AWS Glue's `awsglue` library (awslabs/aws-glue-libs), over local Spark: the classes and
signatures that mlpipe's Glue driver uses, with job bookmarks for S3 sources kept as Glue's documentation
describes them, and a log of every call for the tests to read.

Bookmarks ("Tracking processed data using job bookmarks"): a source with a `transformation_ctx`, read by a job
that `job.init` started with `job_bookmark_option` = `job-bookmark-enable`, returns only the objects that are
new or modified (by last-modified time) since the last committed run; `job.commit` records what this run read.
A run that never commits leaves the bookmark where it was. Without a bookmark every object is read.

The folder in AWSGLUE_DOUBLE_STATE holds `bookmarks.json` and `calls.jsonl`; `job.commit` also logs which
files existed then under AWSGLUE_DOUBLE_WATCH, so a test can check what was written before the commit.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def _state_dir() -> Path:
    folder = Path(os.environ["AWSGLUE_DOUBLE_STATE"])
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def log_call(name: str, **fields: Any) -> None:
    with (_state_dir() / "calls.jsonl").open("a") as log:
        log.write(json.dumps({"call": name, **fields}, default=str) + "\n")


def load_bookmarks() -> dict[str, dict[str, dict[str, int]]]:
    """job name -> transformation_ctx -> object path -> last-modified time (ns)."""
    path = _state_dir() / "bookmarks.json"
    return json.loads(path.read_text()) if path.exists() else {}


def save_bookmarks(bookmarks: dict[str, dict[str, dict[str, int]]]) -> None:
    (_state_dir() / "bookmarks.json").write_text(json.dumps(bookmarks, indent=2, sort_keys=True))


class _Run:
    """The job run that `Job.init` started: its name, whether bookmarks apply, and what its sources read."""

    def __init__(self) -> None:
        self.job_name: str | None = None
        self.bookmarks_enabled = False
        self.pending: dict[str, dict[str, int]] = {}


RUN = _Run()
