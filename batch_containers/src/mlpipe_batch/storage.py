"""Read and write objects by URI: `s3://bucket/key` or a local path, with atomic writes.

S3 goes through boto3, which honours `AWS_ENDPOINT_URL` (and `AWS_ENDPOINT_URL_S3`), so the same code runs
against a local S3 endpoint such as a moto server. The client is created lazily, once per process and
endpoint, so moto's in-process mock intercepts it in tests.

Atomicity: an S3 PUT is atomic (a reader sees the old object or the whole new one), so a write uploads the
complete object in one request. A local write goes to a temporary file in the same folder, is flushed and
fsynced, then renamed into place.
"""

from __future__ import annotations

import functools
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_MULTIPART_THRESHOLD = 64 * 1024 * 1024


class StorageError(Exception):
    """A URI that cannot be read: missing object, missing bucket, access denied. A user can cause it."""


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def parse_s3(uri: str) -> S3Uri:
    rest = uri[len("s3://") :]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise StorageError(f"{uri!r} is not an S3 URI of the form s3://bucket/key")
    return S3Uri(bucket, key)


def join(prefix: str, *names: str) -> str:
    """`prefix` joined with `names` by '/', whether or not the prefix ends with one."""
    out = prefix
    for name in names:
        out = out.rstrip("/") + "/" + name.lstrip("/")
    return out


@functools.cache
def _client_for(endpoint: str | None, region: str | None, pid: int) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(retries={"max_attempts": 10, "mode": "adaptive"}, max_pool_connections=32)
    return boto3.client("s3", config=config)


def s3_client() -> Any:
    """The process's S3 client (boto3 reads AWS_ENDPOINT_URL itself; the key only tracks changes)."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    return _client_for(endpoint, region, os.getpid())


def reset_clients() -> None:
    """Forget cached clients (after credentials or endpoints change, e.g. between moto mocks)."""
    _client_for.cache_clear()


def _s3_error(exc: Exception, uri: str) -> StorageError:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
    return StorageError(f"cannot read {uri}: {code}")


def read_bytes(uri: str) -> bytes:
    if is_s3(uri):
        from botocore.exceptions import BotoCoreError, ClientError

        loc = parse_s3(uri)
        try:
            return s3_client().get_object(Bucket=loc.bucket, Key=loc.key)["Body"].read()
        except ClientError as exc:
            raise _s3_error(exc, uri) from exc
        except BotoCoreError as exc:
            raise StorageError(f"cannot read {uri}: {exc}") from exc
    try:
        return Path(uri).read_bytes()
    except FileNotFoundError as exc:
        raise StorageError(f"cannot read {uri}: no such file") from exc
    except IsADirectoryError as exc:
        raise StorageError(f"cannot read {uri}: it is a directory") from exc
    except PermissionError as exc:
        raise StorageError(f"cannot read {uri}: permission denied") from exc


def exists(uri: str) -> bool:
    if is_s3(uri):
        from botocore.exceptions import ClientError

        loc = parse_s3(uri)
        try:
            s3_client().head_object(Bucket=loc.bucket, Key=loc.key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True
    return Path(uri).is_file()


def write_bytes(uri: str, data: bytes) -> None:
    """Write `data` to `uri` atomically: readers see the previous content or all of the new one."""
    if is_s3(uri):
        loc = parse_s3(uri)
        client = s3_client()
        if len(data) < _MULTIPART_THRESHOLD:
            client.put_object(Bucket=loc.bucket, Key=loc.key, Body=data)
        else:  # a multipart upload becomes visible only when completed: still all or nothing
            import io

            from boto3.s3.transfer import TransferConfig

            client.upload_fileobj(io.BytesIO(data), loc.bucket, loc.key, Config=TransferConfig())
        return
    path = Path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def delete(uri: str) -> None:
    """Delete one object or file; a missing one is not an error."""
    if is_s3(uri):
        loc = parse_s3(uri)
        s3_client().delete_object(Bucket=loc.bucket, Key=loc.key)
        return
    Path(uri).unlink(missing_ok=True)


def list_names(prefix: str) -> list[str]:
    """Names (not full URIs) of the objects or files directly under the folder `prefix`, sorted."""
    if is_s3(prefix):
        loc = parse_s3(join(prefix, ""))
        paginator = s3_client().get_paginator("list_objects_v2")
        names: list[str] = []
        for page in paginator.paginate(Bucket=loc.bucket, Prefix=loc.key, Delimiter="/"):
            names.extend(item["Key"][len(loc.key) :] for item in page.get("Contents", []))
        return sorted(names)
    folder = Path(prefix)
    if not folder.is_dir():
        return []
    return sorted(entry.name for entry in folder.iterdir() if entry.is_file())


def list_tree(prefix: str) -> list[str]:
    """Relative names ('a/b.pt') of every object or file under the folder `prefix`, at any depth, sorted."""
    if is_s3(prefix):
        loc = parse_s3(join(prefix, ""))
        paginator = s3_client().get_paginator("list_objects_v2")
        names: list[str] = []
        for page in paginator.paginate(Bucket=loc.bucket, Prefix=loc.key):
            names.extend(item["Key"][len(loc.key) :] for item in page.get("Contents", []))
        return sorted(n for n in names if n and not n.endswith("/"))
    folder = Path(prefix)
    if not folder.is_dir():
        return []
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
