"""The feature manifest, `mlpipe.features.v1` (docs/contracts.md), read and validated in one place."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from mlpipe_batch import storage
from mlpipe_batch.errors import UsageError

FORMAT = "mlpipe.features.v1"


@dataclass(frozen=True)
class Shard:
    uri: str
    rows: int


@dataclass(frozen=True)
class Split:
    name: str
    rows: int
    shards: tuple[Shard, ...]


@dataclass(frozen=True)
class Categorical:
    name: str
    buckets: int


@dataclass(frozen=True)
class FeatureManifest:
    uri: str
    run_id: str
    id_column: str
    label_column: str
    numeric_features: tuple[str, ...]
    categorical_features: tuple[Categorical, ...]
    splits: dict[str, Split]
    fingerprint: str
    """sha256 of the manifest's bytes: a checkpoint refuses to resume on another dataset."""

    def split(self, name: str) -> Split:
        if name not in self.splits:
            raise UsageError(
                f"manifest {self.uri} has no split {name!r} (it has: {', '.join(sorted(self.splits)) or 'none'})"
            )
        return self.splits[name]


def _bad(uri: str, what: str) -> UsageError:
    return UsageError(f"manifest {uri} is not a valid {FORMAT} manifest: {what}")


def _int(value: Any, uri: str, where: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _bad(uri, f"{where} must be an integer >= {minimum}, got {value!r}")
    return value


def _str(value: Any, uri: str, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise _bad(uri, f"{where} must be a non-empty string, got {value!r}")
    return value


def _resolve(shard_uri: str, manifest_uri: str) -> str:
    """Shard URIs are absolute (s3:// or a local path); a relative path is relative to the manifest."""
    if storage.is_s3(shard_uri) or shard_uri.startswith("/"):
        return shard_uri
    base = manifest_uri.rsplit("/", 1)[0] if "/" in manifest_uri else "."
    return storage.join(base, shard_uri)


def parse(raw: bytes, uri: str) -> FeatureManifest:
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad(uri, f"not JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise _bad(uri, "the document must be a JSON object")
    if doc.get("format") != FORMAT:
        raise _bad(uri, f"format is {doc.get('format')!r}, expected {FORMAT!r}")
    numeric = doc.get("numeric_features", [])
    if not isinstance(numeric, list):
        raise _bad(uri, "numeric_features must be a list of names")
    numeric_names = tuple(_str(name, uri, "numeric_features[]") for name in numeric)
    categorical_raw = doc.get("categorical_features", [])
    if not isinstance(categorical_raw, list):
        raise _bad(uri, "categorical_features must be a list")
    categorical: list[Categorical] = []
    for i, item in enumerate(categorical_raw):
        if not isinstance(item, dict):
            raise _bad(uri, f"categorical_features[{i}] must be an object with name and buckets")
        name = _str(item.get("name"), uri, f"categorical_features[{i}].name")
        categorical.append(Categorical(name, _int(item.get("buckets"), uri, f"{name}.buckets", 1)))
    names = [*numeric_names, *(c.name for c in categorical)]
    if not names:
        raise _bad(uri, "it lists no features")
    if len(set(names)) != len(names):
        raise _bad(uri, "a feature name appears twice")
    splits_raw = doc.get("splits")
    if not isinstance(splits_raw, dict) or not splits_raw:
        raise _bad(uri, "splits must be a non-empty object")
    splits: dict[str, Split] = {}
    for split_name, split in splits_raw.items():
        if not isinstance(split, dict) or not isinstance(split.get("shards"), list):
            raise _bad(uri, f"splits.{split_name} must be an object with a shards list")
        shards = []
        for j, shard in enumerate(split["shards"]):
            if not isinstance(shard, dict):
                raise _bad(uri, f"splits.{split_name}.shards[{j}] must be an object with uri and rows")
            shard_uri = _str(shard.get("uri"), uri, f"splits.{split_name}.shards[{j}].uri")
            rows = _int(shard.get("rows"), uri, f"splits.{split_name}.shards[{j}].rows")
            shards.append(Shard(_resolve(shard_uri, uri), rows))
        total = _int(split.get("rows"), uri, f"splits.{split_name}.rows")
        if total != sum(s.rows for s in shards):
            raise _bad(
                uri, f"splits.{split_name}.rows is {total} but its shards hold {sum(s.rows for s in shards)}"
            )
        splits[split_name] = Split(split_name, total, tuple(shards))
    return FeatureManifest(
        uri=uri,
        run_id=str(doc.get("run_id", "")),
        id_column=_str(doc.get("id_column"), uri, "id_column"),
        label_column=_str(doc.get("label_column"), uri, "label_column"),
        numeric_features=numeric_names,
        categorical_features=tuple(categorical),
        splits=splits,
        fingerprint=hashlib.sha256(raw).hexdigest(),
    )


def load(uri: str) -> FeatureManifest:
    """Read and validate the manifest at `uri`; any problem is a UsageError naming the manifest."""
    try:
        raw = storage.read_bytes(uri)
    except storage.StorageError as exc:
        raise UsageError(f"cannot read the manifest: {exc}") from exc
    return parse(raw, uri)
