"""S3 URIs, JSON reads and atomic JSON writes.

Atomic write (contracts.md): the object is first put under the bucket's `tmp/` prefix (lifecycle: expire
after 7 days), then copied into place and the temporary object deleted, so a reader sees either the old
object or the whole new one."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from mlpipe_common.errors import InvalidInput

TMP_PREFIX = "tmp/"
_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})
# Without s3:ListBucket on the bucket, S3 answers 403 instead of 404 for a missing object. The roles are
# granted s3:GetObject on the prefixes read, so a 403 on a read means "missing" in practice; the error
# says both.
_FORBIDDEN = frozenset({"AccessDenied", "403", "Forbidden"})


@dataclass(frozen=True, order=True)
class S3Uri:
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Uri:
        """Parse `s3://bucket/key`; raise ValueError on anything else."""
        if not isinstance(uri, str) or not uri.startswith("s3://"):
            raise ValueError(f"{uri!r} is not an s3:// URI")
        bucket, _, key = uri[len("s3://") :].partition("/")
        if not bucket:
            raise ValueError(f"{uri!r} has no bucket")
        return cls(bucket, key)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def join(self, *parts: str) -> S3Uri:
        """Append key parts; `S3Uri("b", "runs/").join("r1", "plan.json")` is `s3://b/runs/r1/plan.json`."""
        key = self.key
        for part in parts:
            if key and not key.endswith("/"):
                key += "/"
            key += part.lstrip("/")
        return S3Uri(self.bucket, key)

    @property
    def name(self) -> str:
        return self.key.rstrip("/").rsplit("/", 1)[-1]


def prefix_uri(bucket: str, *parts: str) -> str:
    """`s3://bucket/part/part/` (a prefix, ending in '/')."""
    return str(S3Uri(bucket, "").join(*parts)).rstrip("/") + "/"


def object_uri(bucket: str, *parts: str) -> str:
    return str(S3Uri(bucket, "").join(*parts))


def parse_in_buckets(uri: Any, allowed: Iterable[str], *, field: str) -> S3Uri:
    """Parse `uri` and check that its bucket is one of `allowed`; `InvalidInput` naming `field` otherwise."""
    try:
        parsed = S3Uri.parse(uri)
    except ValueError as exc:
        raise InvalidInput(f"{field}: {exc}") from None
    allowed = sorted(set(allowed))
    if parsed.bucket not in allowed:
        raise InvalidInput(
            f"{field}: {uri} is outside the project's buckets; it must be in "
            + " or ".join(f"s3://{b}/" for b in allowed)
        )
    return parsed


class S3ObjectNotFound(LookupError):
    def __init__(self, uri: S3Uri, *, forbidden: bool = False) -> None:
        super().__init__(
            f"{uri} does not exist" + (" (or is not readable: access denied)" if forbidden else "")
        )
        self.uri = uri
        self.forbidden = forbidden


def _missing(exc: ClientError, uri: S3Uri) -> S3ObjectNotFound | None:
    code = exc.response.get("Error", {}).get("Code")
    if code in _NOT_FOUND:
        return S3ObjectNotFound(uri)
    if code in _FORBIDDEN:
        return S3ObjectNotFound(uri, forbidden=True)
    return None


def get_bytes(s3: Any, uri: S3Uri) -> bytes:
    try:
        response = s3.get_object(Bucket=uri.bucket, Key=uri.key)
    except ClientError as exc:
        missing = _missing(exc, uri)
        if missing:
            raise missing from None
        raise
    body: bytes = response["Body"].read()
    return body


def read_json(s3: Any, uri: S3Uri) -> Any:
    """The parsed JSON object at `uri`: `S3ObjectNotFound` if absent, ValueError if not JSON."""
    data = get_bytes(s3, uri)
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{uri} is not valid JSON: {exc}") from None


def read_json_object(s3: Any, uri: S3Uri, what: str, error: type[Exception]) -> dict[str, Any]:
    """The JSON object at `uri`; `error` naming `what` when it is absent, not JSON or not an object."""
    try:
        document = read_json(s3, uri)
    except S3ObjectNotFound as exc:
        raise error(f"{what} {exc}") from None
    except ValueError as exc:
        raise error(f"{what}: {exc}") from None
    if not isinstance(document, dict):
        raise error(f"{what} {uri} is not a JSON object")
    return document


def exists(s3: Any, uri: S3Uri) -> bool:
    """Whether the object exists (a 403 counts as missing, see `_FORBIDDEN`)."""
    try:
        s3.head_object(Bucket=uri.bucket, Key=uri.key)
    except ClientError as exc:
        if _missing(exc, uri):
            return False
        raise
    return True


def has_objects(s3: Any, prefix: S3Uri) -> bool:
    """Whether at least one object's key starts with `prefix`."""
    response = s3.list_objects_v2(Bucket=prefix.bucket, Prefix=prefix.key, MaxKeys=1)
    return bool(response.get("KeyCount", 0))


def dumps(document: Any) -> bytes:
    """The canonical serialization of mlpipe's JSON documents (sorted keys, UTF-8, trailing newline)."""
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def temporary(uri: S3Uri) -> S3Uri:
    """Where an atomic write of `uri` stages its object: `tmp/<the key>.<uuid>` in the same bucket."""
    return S3Uri(uri.bucket, f"{TMP_PREFIX}{uri.key}.{uuid.uuid4().hex}")


def put_json_atomic(s3: Any, uri: S3Uri, document: Any) -> None:
    """Write `document` to `uri` atomically: put under `tmp/<the key>`, copy into place, delete the temporary.
    (The temporary's key starts with the destination's, so a role scoped to a workload's prefixes can write it.)"""
    tmp = temporary(uri)
    s3.put_object(Bucket=tmp.bucket, Key=tmp.key, Body=dumps(document), ContentType="application/json")
    try:
        s3.copy_object(
            Bucket=uri.bucket,
            Key=uri.key,
            CopySource={"Bucket": tmp.bucket, "Key": tmp.key},
            ContentType="application/json",
            MetadataDirective="REPLACE",
        )
    finally:
        s3.delete_object(Bucket=tmp.bucket, Key=tmp.key)
