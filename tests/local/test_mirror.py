"""The S3 mirror of local mode (mlpipe/local/mirror.py), on moto: pull, push, deletions, JSON URIs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from mlpipe.local.mirror import Mirror

BUCKET = "mlpipe-dev-curated-123456789012-us-east-1"


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def keys(s3: Any, prefix: str = "") -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []))


def test_a_job_output_is_published_exactly_and_what_it_removed_goes(s3: Any, tmp_path: Path) -> None:
    s3.put_object(Bucket=BUCKET, Key="features/r1/train/part-00000.parquet", Body=b"old")
    s3.put_object(Bucket=BUCKET, Key="features/r1/train/part-00001.parquet", Body=b"old")
    mirror = Mirror(tmp_path / "s3")
    uri = f"s3://{BUCKET}/features/r1/"
    assert mirror.pull(uri) == 2
    assert mirror.pull(uri) == 0  # unchanged: nothing downloaded again

    out = mirror.path(uri)  # the job rewrites its output: one shard, hidden and temporary files
    (out / "train" / "part-00001.parquet").unlink()
    (out / "train" / "part-00000.parquet").write_bytes(b"new")
    (out / "train" / ".part-00000.parquet.crc").write_bytes(b"crc")
    (out / "_temporary" / "0").mkdir(parents=True)
    (out / "_temporary" / "0" / "x").write_bytes(b"tmp")
    s3.put_object(Bucket=BUCKET, Key="features/r1/other-writer.txt", Body=b"not ours")
    assert mirror.push(uri) == 1

    assert keys(s3, "features/") == ["features/r1/other-writer.txt", "features/r1/train/part-00000.parquet"]
    body = s3.get_object(Bucket=BUCKET, Key="features/r1/train/part-00000.parquet")["Body"].read()
    assert body == b"new"


def test_json_names_s3_uris_in_s3_and_mirror_paths_locally(s3: Any, tmp_path: Path) -> None:
    mirror = Mirror(tmp_path / "s3")
    shard = f"s3://{BUCKET}/features/r1/test/part-00000.parquet"
    manifest = mirror.path(f"s3://{BUCKET}/features/r1/manifest.json")
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"shards": [str(mirror.path(shard))]}))
    mirror.push(f"s3://{BUCKET}/features/r1/manifest.json")
    published = json.loads(s3.get_object(Bucket=BUCKET, Key="features/r1/manifest.json")["Body"].read())
    assert published == {"shards": [shard]}

    fresh = Mirror(tmp_path / "other")  # another mirror pulls it: local paths again, under its own root
    fresh.pull(f"s3://{BUCKET}/features/")
    pulled = json.loads(fresh.path(f"s3://{BUCKET}/features/r1/manifest.json").read_text())
    assert pulled == {"shards": [str(fresh.path(shard))]}


def test_a_pull_drops_what_s3_deleted_and_a_restore_uploads_everything(s3: Any, tmp_path: Path) -> None:
    s3.put_object(Bucket=BUCKET, Key="reports/r1/a.json", Body=b"{}")
    s3.put_object(Bucket=BUCKET, Key="reports/r1/b.json", Body=b"{}")
    mirror = Mirror(tmp_path / "s3")
    mirror.pull(f"s3://{BUCKET}/reports/")
    s3.delete_object(Bucket=BUCKET, Key="reports/r1/b.json")
    mirror.pull(f"s3://{BUCKET}/reports/")
    assert not mirror.path(f"s3://{BUCKET}/reports/r1/b.json").exists()
    assert mirror.path(f"s3://{BUCKET}/reports/r1/a.json").exists()

    s3.delete_object(Bucket=BUCKET, Key="reports/r1/a.json")  # a fresh S3 (a redrive's server)
    reopened = Mirror(tmp_path / "s3")  # the index survives the process
    assert reopened.push_all() == 1
    assert keys(s3) == ["reports/r1/a.json"]
