"""Atomic writes and reads of whole objects on local paths or `s3://` URIs.

A writer never exposes a partial object: local files are written to a hidden temporary name in the same
folder and renamed into place; S3 objects are written to a local temporary file and uploaded, and an S3
object becomes visible only when its upload completes. boto3 honours `AWS_ENDPOINT_URL`.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    """`s3://bucket/key` -> (`bucket`, `key`)."""
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"not an s3:// URI with a bucket: {uri!r}")
    return bucket, key


def s3_client() -> Any:
    """A boto3 S3 client, created on first use so that moto can intercept it."""
    import boto3

    return boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)


def join(prefix: str, name: str) -> str:
    """Join a folder URI (local or s3://) and a relative name."""
    if is_s3(prefix):
        return prefix.rstrip("/") + "/" + name
    return str(Path(prefix) / name)


@contextmanager
def atomic_output(uri: str) -> Iterator[IO[bytes]]:
    """Open `uri` for binary writing; the object appears only if the block completes."""
    if is_s3(uri):
        bucket, key = split_s3(uri)
        fd, tmp = tempfile.mkstemp(prefix="mlpipe-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as fh:
                yield fh
            s3_client().upload_file(tmp, bucket, key)
        finally:
            os.unlink(tmp)
        return
    path = Path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Hidden name: Spark, Glue and Hadoop skip files starting with "." when they list a folder.
    tmp_path = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp_path, "wb") as fh:
            yield fh
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_bytes(uri: str, data: bytes) -> None:
    with atomic_output(uri) as fh:
        fh.write(data)


@contextmanager
def local_copy(uri: str) -> Iterator[str]:
    """A local path holding the object at `uri` (downloaded to a temporary file for s3://)."""
    if not is_s3(uri):
        if not Path(uri).exists():
            raise FileNotFoundError(f"no such file: {uri}")
        yield uri
        return
    bucket, key = split_s3(uri)
    fd, tmp = tempfile.mkstemp(prefix="mlpipe-", suffix=Path(key).suffix)
    os.close(fd)
    try:
        s3_client().download_file(bucket, key, tmp)
        yield tmp
    finally:
        os.unlink(tmp)
