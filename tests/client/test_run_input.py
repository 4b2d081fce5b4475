"""The execution input: read and validated with the Lambda's schema module before any AWS call, resolved
with the deployed Plan function's settings, and its run id derived as the Plan state derives it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from moto_deployment import CURATED, DEFAULT_CANDIDATES, RAW

from mlpipe.client import UsageError, run_input

PLAN_ENV = {
    "RAW_BUCKET": RAW,
    "CURATED_BUCKET": CURATED,
    "ARTIFACTS_BUCKET": "mlpipe-artifacts-test",
    "WORKLOAD_NAME": "clicks",
    "RAW_PREFIX": "events/",
    "METRIC_NAME": "auc",
    "METRIC_DIRECTION": "maximize",
    "METRIC_GATE": "0.7",
    "FEATURES_SCRIPT_URI": "s3://mlpipe-artifacts-test/code/a.py",
    "INFERENCE_FEATURES_SCRIPT_URI": "s3://mlpipe-artifacts-test/code/b.py",
    "EMR_PY_FILES_URI": "s3://mlpipe-artifacts-test/code/c.zip",
    "WORKLOAD_CODE_URI": "s3://mlpipe-artifacts-test/code/w.zip",
    "STAGES": '["clean", "features"]',
    "FEATURES_ARGUMENTS": "[]",
    "INFERENCE_FEATURES_ARGUMENTS": "[]",
    "DEFAULT_CANDIDATES": json.dumps(DEFAULT_CANDIDATES),
    "MAX_CANDIDATES": "4",
}
RAW_URI = f"s3://{RAW}/events/"


def test_schema_errors_name_the_field() -> None:
    with pytest.raises(UsageError, match=r"input: unknown key\(s\) 'epochs'; allowed keys: candidates"):
        run_input.validate({"raw_uri": RAW_URI, "epochs": 3})
    with pytest.raises(UsageError, match=r"input: missing required key\(s\) 'raw_uri'"):
        run_input.validate({})
    with pytest.raises(
        UsageError, match=r"input\.candidates\[0\]\.nodes must be smaller than or equal to 16"
    ):
        run_input.validate({"raw_uri": RAW_URI, "candidates": [{"name": "a", "nodes": 17}]})
    with pytest.raises(UsageError, match=r"input\.quality_gate\.threshold must be number"):
        run_input.validate({"raw_uri": RAW_URI, "quality_gate": {"threshold": "0.2"}})
    run_input.validate({"raw_uri": RAW_URI, "candidates": [{"name": "a", "hyperparameters": {"lr": 0.1}}]})


def test_the_schema_is_the_published_file_not_a_copy() -> None:
    from mlpipe.client import lambda_code

    module = lambda_code.module("mlpipe_common.execution_input")
    assert Path(module.SCHEMA_PATH) == lambda_code.SCHEMA_PATH
    assert (
        Path(__file__).resolve().parents[2] / "lambdas/mlpipe_common/execution_input.schema.json"
        == lambda_code.SCHEMA_PATH
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"raw_uri": ', r"not valid JSON: Expecting value \(line 1, column 13\)"),
        ('{"raw_uri": "s3://a/events/",}', r"not valid JSON: .*\(line 1, column 30\)"),
        ('{"quality_gate": {"threshold": NaN}}', r"NaN is not valid JSON"),
    ],
)
def test_malformed_json_names_file_and_position(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "input.json"
    path.write_text(content)
    with pytest.raises(UsageError, match=f"{path}: {message}"):
        run_input.read_json_file(str(path))


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        run_input.read_json_file(str(tmp_path / "nope.json"))
    with pytest.raises(UsageError, match="is a directory"):
        run_input.read_json_file(str(tmp_path))
    assert run_input.read_json_file("-", stdin_text='{"a": 1}') == {"a": 1}


def test_run_id_does_not_depend_on_key_order_or_spelled_out_defaults() -> None:
    bare = run_input.resolve({"raw_uri": RAW_URI}, PLAN_ENV)
    spelled = run_input.resolve(
        {
            "inference_input_uri": f"s3://{CURATED}/curated/clicks/",
            "candidates": [{**c, "nodes": 1, "gpus": 1} for c in DEFAULT_CANDIDATES],
            "features": {},
            "raw_uri": RAW_URI,
        },
        PLAN_ENV,
    )
    assert bare.derived and spelled.derived
    assert bare.run_id == spelled.run_id
    assert bare.run_id.startswith("r-") and len(bare.run_id) == 18


def test_run_id_follows_the_deployment_defaults_and_the_input() -> None:
    base = run_input.resolve({"raw_uri": RAW_URI}, PLAN_ENV).run_id
    fewer = {**PLAN_ENV, "DEFAULT_CANDIDATES": json.dumps(DEFAULT_CANDIDATES[:1])}
    assert run_input.resolve({"raw_uri": RAW_URI}, fewer).run_id != base
    assert run_input.resolve({"raw_uri": RAW_URI + "2026/"}, PLAN_ENV).run_id != base
    given = run_input.resolve({"raw_uri": RAW_URI, "run_id": "nightly-1"}, PLAN_ENV)
    assert (given.run_id, given.derived) == ("nightly-1", False)


def test_the_plan_checks_a_schema_cannot_express() -> None:
    with pytest.raises(UsageError, match=r"input\.raw_uri: s3://elsewhere/events/ is outside"):
        run_input.resolve({"raw_uri": "s3://elsewhere/events/"}, PLAN_ENV)
    five = [{"name": f"c{i}"} for i in range(5)]
    with pytest.raises(UsageError, match="5 candidates given, at most 4 allowed"):
        run_input.resolve({"raw_uri": RAW_URI, "candidates": five}, PLAN_ENV)
    with pytest.raises(UsageError, match="'a' is used by more than one candidate"):
        run_input.resolve({"raw_uri": RAW_URI, "candidates": [{"name": "a"}, {"name": "a"}]}, PLAN_ENV)


def test_resolving_leaves_the_process_environment_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAW_BUCKET", "mine")
    monkeypatch.delenv("MAX_CANDIDATES", raising=False)
    run_input.resolve({"raw_uri": RAW_URI}, PLAN_ENV)
    import os

    assert os.environ["RAW_BUCKET"] == "mine"
    assert "MAX_CANDIDATES" not in os.environ


def test_hyperparameters_follow_the_schema_candidate_rules() -> None:
    run_input.validate_hyperparameters(
        {"lr": 0.1, "hidden": [64, 32], "opt": "adam"}, source="--hyperparameters"
    )
    with pytest.raises(UsageError, match=r"--hyperparameters: invalid key\(s\) '1lr'"):
        run_input.validate_hyperparameters({"1lr": 0.1}, source="--hyperparameters")
    with pytest.raises(
        UsageError, match=r"--hyperparameters\.hidden cannot be validated .* a list of at most 8 numbers"
    ):
        run_input.validate_hyperparameters({"hidden": {"a": 1}}, source="--hyperparameters")


def test_canonical_input_is_stable() -> None:
    a: dict[str, Any] = {"raw_uri": RAW_URI, "quality_gate": {"threshold": 0.8}}
    b: dict[str, Any] = {"quality_gate": {"threshold": 0.8}, "raw_uri": RAW_URI}
    assert (
        run_input.canonical(a)
        == run_input.canonical(b)
        == json.dumps(b, sort_keys=True, separators=(",", ":"))
    )
