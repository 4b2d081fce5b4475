"""A folder that mirrors the local S3: `<root>/<bucket>/<key>` for `s3://<bucket>/<key>`.

Local Spark has no S3 filesystem (EMRFS and Glue's S3 connector exist only in AWS, and hadoop-aws is not
on PyPI), so local mode stages: before a Glue or EMR job, the S3 objects its arguments name are pulled into
the mirror, the job runs on the mirror's paths, and after it succeeds what it wrote is pushed back. The
mirror is also what outlives the run: a redrive restores S3 from it, and a user can open the model and the
predictions there.

- `pull(uri)`: download the object, or every object under the prefix, that the mirror does not already hold
  (same ETag as recorded at the last transfer, file unchanged since).
- `push(uri)`: upload every new or changed file under the path, and delete the objects under the prefix that
  no longer exist locally (the job replaced them), so S3 shows exactly what the job committed. Hidden files
  (`.name`, Hadoop's checksums) and Spark's `_temporary` folders are never uploaded. `force=True` uploads
  everything (restoring a fresh S3).
- JSON documents carry URIs (manifests list their shards): on the way out, mirror paths become `s3://`
  URIs; on the way in, `s3://` URIs become mirror paths, so local Spark can open what they name.

The index of what was transferred (`.index.json`) lets a later process (a redrive) skip unchanged files.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig

INDEX = ".index.json"
_TRANSFER = TransferConfig(multipart_threshold=256 << 20, multipart_chunksize=64 << 20, max_concurrency=4)
_THREADS = 8


def split(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


class Mirror:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).absolute()
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._index: dict[str, dict[str, Any]] = {}
        index = self.root / INDEX
        if index.exists():
            self._index = json.loads(index.read_text())
        self._s3: Any = None

    # ---- naming ---------------------------------------------------------------------------------------
    def path(self, uri: str) -> Path:
        bucket, key = split(uri)
        return self.root / bucket / key

    def local(self, uri: str) -> str:
        """The mirror path of `uri`, keeping a trailing `/` (scripts tell folders by it)."""
        return str(self.path(uri)) + ("/" if uri.endswith("/") else "")

    def uri(self, path: Path) -> str:
        return "s3://" + path.absolute().relative_to(self.root).as_posix()

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            self._s3 = boto3.client("s3")
        return self._s3

    # ---- transfers ------------------------------------------------------------------------------------
    def _remote(self, uri: str) -> dict[str, str]:
        """Key -> ETag of the object `uri`, or of every object under it as a prefix."""
        bucket, key = split(uri)
        found: dict[str, str] = {}
        prefix = key if key.endswith("/") or not key else key + "/"
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            found.update({o["Key"]: o["ETag"] for o in page.get("Contents", [])})
        if key and not key.endswith("/") and not found:
            with contextlib.suppress(self.s3.exceptions.ClientError):  # no such object: nothing to list
                found[key] = self.s3.head_object(Bucket=bucket, Key=key)["ETag"]
        return found

    def _current(self, name: str, path: Path, etag: str | None = None) -> bool:
        entry = self._index.get(name)
        if entry is None or not path.is_file() or (etag is not None and entry["etag"] != etag):
            return False
        stat = path.stat()
        return bool(entry["size"] == stat.st_size and entry["mtime_ns"] == stat.st_mtime_ns)

    def _record(self, name: str, path: Path, etag: str) -> None:
        stat = path.stat()
        with self._lock:
            self._index[name] = {"etag": etag, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}

    def _forget(self, name: str) -> None:
        with self._lock:
            self._index.pop(name, None)

    def pull(self, uri: str) -> int:
        """Bring the mirror up to date with S3 under `uri`; returns the number of files downloaded."""
        bucket, key_prefix = split(uri)
        remote = self._remote(uri)
        todo = [
            (key, etag)
            for key, etag in remote.items()
            if not key.endswith("/") and not self._current(f"{bucket}/{key}", self.root / bucket / key, etag)
        ]
        # Files this mirror got from (or gave to) S3 that S3 no longer has: deleted there, so here too.
        for name in [n for n in self._index if n.startswith(f"{bucket}/{key_prefix}")]:
            key = name.split("/", 1)[1]
            if key not in remote and _under(key, key_prefix):
                (self.root / name).unlink(missing_ok=True)
                self._forget(name)

        def fetch(item: tuple[str, str]) -> None:
            key, etag = item
            path = self.root / bucket / key
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
            try:
                self.s3.download_file(bucket, key, str(tmp), Config=_TRANSFER)
                if path.suffix == ".json":
                    tmp.write_bytes(tmp.read_bytes().replace(b"s3://", f"{self.root}/".encode()))
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
            self._record(f"{bucket}/{key}", path, etag)

        self._parallel(fetch, todo)
        self.save()
        return len(todo)

    def push(self, uri: str, *, force: bool = False) -> int:
        """Make S3 under `uri` what the mirror holds; returns the number of files uploaded."""
        bucket, _ = split(uri)
        base = self.path(uri)
        files = dict(_files(base, self.root))
        todo = [(name, path) for name, path in files.items() if force or not self._current(name, path)]

        def send(item: tuple[str, Path]) -> None:
            name, path = item
            key = name.split("/", 1)[1]
            if path.suffix == ".json":
                body = path.read_bytes().replace(f"{self.root}/".encode(), b"s3://")
                etag = self.s3.put_object(Bucket=bucket, Key=key, Body=body)["ETag"]
            else:
                self.s3.upload_file(str(path), bucket, key, Config=_TRANSFER)
                etag = self.s3.head_object(Bucket=bucket, Key=key)["ETag"]
            self._record(name, path, etag)

        self._parallel(send, todo)
        if base.is_dir() or not base.exists():  # a prefix: what the job removed goes from S3 too
            # only objects this mirror knows (pulled or pushed): never what another writer put there since
            stale = [
                key
                for key in self._remote(uri)
                if f"{bucket}/{key}" not in files and f"{bucket}/{key}" in self._index
            ]
            for start in range(0, len(stale), 1000):
                chunk = stale[start : start + 1000]
                self.s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in chunk]})
            for key in stale:
                self._forget(f"{bucket}/{key}")
        self.save()
        return len(todo)

    def push_all(self) -> int:
        """Upload the whole mirror (a fresh S3: a redrive's restore)."""
        return sum(self.push(f"s3://{b.name}/", force=True) for b in self._buckets())

    def pull_all(self, buckets: list[str]) -> int:
        return sum(self.pull(f"s3://{bucket}/") for bucket in buckets)

    def _buckets(self) -> list[Path]:
        return sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def save(self) -> None:
        with self._lock:
            data = json.dumps(self._index, sort_keys=True)
        tmp = self.root / f".{INDEX}.{uuid.uuid4().hex}.tmp"
        tmp.write_text(data)
        os.replace(tmp, self.root / INDEX)

    @staticmethod
    def _parallel(fn: Any, items: list[Any]) -> None:
        if len(items) <= 1:
            for item in items:
                fn(item)
            return
        with ThreadPoolExecutor(min(_THREADS, len(items))) as pool:
            list(pool.map(fn, items))  # re-raises the first error


def _files(base: Path, root: Path) -> Iterator[tuple[str, Path]]:
    """(bucket/key, path) of every file to publish under `base` (a file or a folder)."""
    if base.is_file():
        if not base.name.startswith("."):
            yield base.relative_to(root).as_posix(), base
        return
    if not base.is_dir():
        return
    for folder, dirs, names in os.walk(base):
        dirs[:] = [d for d in dirs if not d.startswith((".", "_temporary"))]
        for name in names:
            if not name.startswith("."):
                path = Path(folder) / name
                yield path.relative_to(root).as_posix(), path


def _under(key: str, prefix: str) -> bool:
    """Whether `key` is the object `prefix` or lies under it as a folder."""
    return not prefix or key == prefix or key.startswith(prefix if prefix.endswith("/") else prefix + "/")
