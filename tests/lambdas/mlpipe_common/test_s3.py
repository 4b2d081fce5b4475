from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from mlpipe_common.errors import InvalidInput
from mlpipe_common.s3 import S3ObjectNotFound, S3Uri, exists, parse_in_buckets, put_json_atomic, read_json


def test_uri_parse_join_and_name() -> None:
    uri = S3Uri.parse("s3://bucket/runs/")
    assert uri == S3Uri("bucket", "runs/")
    assert str(uri.join("r1", "plan.json")) == "s3://bucket/runs/r1/plan.json"
    assert S3Uri.parse("s3://bucket/a/b/").name == "b"
    for bad in ("https://bucket/key", "s3://", "bucket/key"):
        with pytest.raises(ValueError):
            S3Uri.parse(bad)


def test_parse_in_buckets_names_the_field_and_allowed_buckets() -> None:
    assert parse_in_buckets("s3://mine/x", ["mine"], field="f") == S3Uri("mine", "x")
    with pytest.raises(InvalidInput, match=r"f: s3://theirs/x is outside the project's buckets.*s3://mine/"):
        parse_in_buckets("s3://theirs/x", ["mine"], field="f")
    with pytest.raises(InvalidInput, match=r"f: 'file:///x' is not an s3:// URI"):
        parse_in_buckets("file:///x", ["mine"], field="f")


def test_atomic_write_leaves_only_the_final_object(s3: Any, store: Any, lambda_env: dict[str, str]) -> None:
    bucket = lambda_env["ARTIFACTS_BUCKET"]
    uri = S3Uri(bucket, "runs/r1/evaluation.json")
    put_json_atomic(s3, uri, {"auc": 0.9, "name": "ü"})
    assert store.keys(bucket) == ["runs/r1/evaluation.json"]
    assert read_json(s3, uri) == {"auc": 0.9, "name": "ü"}
    head = s3.head_object(Bucket=bucket, Key=uri.key)
    assert head["ContentType"] == "application/json"


def test_read_json_missing_and_corrupt(s3: Any, store: Any, lambda_env: dict[str, str]) -> None:
    bucket = lambda_env["ARTIFACTS_BUCKET"]
    with pytest.raises(S3ObjectNotFound):
        read_json(s3, S3Uri(bucket, "nope.json"))
    store.put(f"s3://{bucket}/bad.json", b"{not json")
    with pytest.raises(ValueError, match=r"is not valid JSON"):
        read_json(s3, S3Uri(bucket, "bad.json"))


class DenyingS3:
    """A client as S3 answers a role without s3:ListBucket: 403 for a missing object."""

    def get_object(self, **_: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "GetObject")

    def head_object(self, **_: Any) -> None:
        raise ClientError({"Error": {"Code": "403", "Message": "Forbidden"}}, "HeadObject")


def test_access_denied_on_read_counts_as_missing_and_says_so() -> None:
    uri = S3Uri("b", "runs/r/plan.json")
    with pytest.raises(
        S3ObjectNotFound, match=r"s3://b/runs/r/plan.json does not exist \(or is not readable"
    ):
        read_json(DenyingS3(), uri)
    assert exists(DenyingS3(), uri) is False
