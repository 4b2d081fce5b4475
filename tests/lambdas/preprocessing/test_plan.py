"""The Plan state: validation, run id, plan.json and the returned payload."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from mlpipe_common.errors import ConfigurationError, InvalidInput
from preprocessing.handler import handler
from preprocessing.plan import PlanSettings, plan_run

PAYLOAD_KEYS = {
    "run_id",
    "plan_uri",
    "raw_uri",
    "glue_arguments",
    "emr_features_args",
    "emr_inference_args",
    "manifest_uri",
    "inference_manifest_uri",
    "evaluation_output_uri",
}


def raw_input(env: dict[str, str], **more: Any) -> dict[str, Any]:
    return {"raw_uri": f"s3://{env['RAW_BUCKET']}/events/", **more}


def test_valid_input_writes_the_plan_and_returns_pointers(
    s3: Any, store: Any, lambda_env: dict[str, str]
) -> None:
    raw, curated, artifacts = (
        lambda_env["RAW_BUCKET"],
        lambda_env["CURATED_BUCKET"],
        lambda_env["ARTIFACTS_BUCKET"],
    )
    payload = handler(raw_input(lambda_env, run_id="nightly-1", features={"target_shard_mb": 64}), None)

    assert set(payload) == PAYLOAD_KEYS
    assert payload["run_id"] == "nightly-1"
    assert payload["plan_uri"] == f"s3://{artifacts}/runs/clicks/nightly-1/plan.json"
    assert payload["raw_uri"] == f"s3://{raw}/events/"
    assert payload["glue_arguments"] == {
        "--input": f"s3://{raw}/events/",
        "--output": f"s3://{curated}/curated/clicks/",
        "--quarantine": f"s3://{curated}/quarantine/clicks/nightly-1/",
        "--report": f"s3://{curated}/reports/clicks/nightly-1/clean_report.json",
    }
    manifest = f"s3://{curated}/features/clicks/nightly-1/manifest.json"
    assert payload["manifest_uri"] == manifest
    assert (
        payload["inference_manifest_uri"]
        == f"s3://{curated}/features/clicks/nightly-1/inference_manifest.json"
    )
    # The driver's library and the workload's code package, then the workload's arguments from its manifest.
    py_files = f"{lambda_env['EMR_PY_FILES_URI']},{lambda_env['WORKLOAD_CODE_URI']}"
    spark = ["spark-submit", "--deploy-mode", "cluster", "--py-files", py_files]
    assert payload["emr_features_args"] == [
        *spark,
        lambda_env["FEATURES_SCRIPT_URI"],
        *(
            "--input",
            f"s3://{curated}/curated/clicks/",
            "--output",
            f"s3://{curated}/features/clicks/nightly-1/",
        ),
        *("--manifest", manifest, "--run-id", "nightly-1"),
        *json.loads(lambda_env["FEATURES_ARGUMENTS"]),
        *("--target-shard-mb", "64"),
    ]
    assert payload["emr_inference_args"] == [
        *spark,
        lambda_env["INFERENCE_FEATURES_SCRIPT_URI"],
        *("--input", f"s3://{curated}/curated/clicks/", "--training-manifest", manifest),
        *("--output", f"s3://{curated}/features/clicks/nightly-1/inference/"),
        *("--manifest", f"s3://{curated}/features/clicks/nightly-1/inference_manifest.json"),
        *json.loads(lambda_env["INFERENCE_FEATURES_ARGUMENTS"]),
    ]
    assert len(json.dumps(payload)) < 4096  # pointers and small fields only

    assert store.keys(artifacts) == ["runs/clicks/nightly-1/plan.json"]  # the temporary object is gone
    plan = store.get_json(payload["plan_uri"])
    assert plan["format"] == "mlpipe.plan.v1" and plan["run_id"] == "nightly-1"
    assert [c["name"] for c in plan["candidates"]] == ["small", "large"]  # DEFAULT_CANDIDATES
    assert plan["candidates"][0] == {
        "name": "small",
        "hyperparameters": {"hidden": 32, "lr": 0.01},
        "nodes": 1,
        "gpus": 1,
    }
    assert plan["uris"]["model_manifest"] == f"s3://{artifacts}/runs/clicks/nightly-1/model/manifest.json"
    assert plan["uris"]["checkpoints"] == f"s3://{artifacts}/checkpoints/clicks/nightly-1/"
    assert plan["quality_gate"] is None


def test_given_candidates_and_gate_override_are_planned(
    s3: Any, store: Any, lambda_env: dict[str, str]
) -> None:
    candidates = [{"name": "a", "hyperparameters": {"lr": 0.1}, "nodes": 2}, {"name": "b"}]
    payload = plan_run(
        s3,
        raw_input(lambda_env, candidates=candidates, quality_gate={"threshold": 0.8}),
        PlanSettings.from_env(),
    )
    plan = store.get_json(payload["plan_uri"])
    assert plan["candidates"] == [
        # GPUs come from the job definition each shape runs on (the deployment's multi-node one: 4 per node).
        {"name": "a", "hyperparameters": {"lr": 0.1}, "nodes": 2, "gpus": 4},
        {"name": "b", "hyperparameters": {}, "nodes": 1, "gpus": 1},
    ]
    assert plan["quality_gate"] == {"threshold": 0.8}
    assert "--target-shard-mb" not in payload["emr_features_args"]


def test_list_hyperparameters_are_planned_as_the_training_container_takes_them(
    s3: Any, store: Any, lambda_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The training container's `hidden` is a list of layer widths; the deployment's default candidates
    (mlpipe.config) use one, so a list of numbers must pass both as a default and in the input."""
    defaults = [{"name": "wide", "hyperparameters": {"lr": 0.002, "epochs": 4, "hidden": [256, 128]}}]
    monkeypatch.setenv("DEFAULT_CANDIDATES", json.dumps(defaults))
    payload = plan_run(s3, raw_input(lambda_env), PlanSettings.from_env())
    plan = store.get_json(payload["plan_uri"])
    assert plan["candidates"][0]["hyperparameters"] == {"lr": 0.002, "epochs": 4, "hidden": [256, 128]}

    given = [{"name": "deep", "hyperparameters": {"hidden": [64, 64, 32]}}]
    plan = store.get_json(
        plan_run(s3, raw_input(lambda_env, candidates=given), PlanSettings.from_env())["plan_uri"]
    )
    assert plan["candidates"][0]["hyperparameters"] == {"hidden": [64, 64, 32]}


def test_same_input_twice_maps_to_the_same_run_and_plan(
    s3: Any, store: Any, lambda_env: dict[str, str]
) -> None:
    settings = PlanSettings.from_env()
    document = raw_input(lambda_env, candidates=[{"name": "a", "hyperparameters": {"lr": 0.1, "hidden": 8}}])
    first = plan_run(s3, document, settings)
    plan_before = store.get_json(first["plan_uri"])
    # the same input with keys in another order and defaults spelled out is the same run
    reordered = {
        "candidates": [{"nodes": 1, "gpus": 1, "hyperparameters": {"hidden": 8, "lr": 0.1}, "name": "a"}],
        "raw_uri": document["raw_uri"],
    }
    second = plan_run(s3, reordered, settings)
    assert second == first
    assert re.fullmatch(r"r-[0-9a-f]{16}", first["run_id"])
    assert store.get_json(first["plan_uri"]) == plan_before  # reused, not rewritten
    assert store.keys(lambda_env["ARTIFACTS_BUCKET"]) == [f"runs/clicks/{first['run_id']}/plan.json"]

    other = plan_run(
        s3, raw_input(lambda_env, candidates=[{"name": "a", "hyperparameters": {"lr": 0.2}}]), settings
    )
    assert other["run_id"] != first["run_id"]


class CountingS3:
    """Delegates to the moto client and counts object writes."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.writes = 0

    def __getattr__(self, name: str) -> Any:
        if name in {"put_object", "copy_object"}:
            self.writes += 1
        return getattr(self.client, name)


def test_a_repeated_start_does_not_rewrite_the_plan_unless_the_deployment_changed(
    s3: Any, store: Any, lambda_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    counting = CountingS3(s3)
    first = plan_run(counting, raw_input(lambda_env), PlanSettings.from_env())
    assert counting.writes == 2  # put under tmp/, copy into place
    created_at = store.get_json(first["plan_uri"])["created_at"]

    plan_run(counting, raw_input(lambda_env), PlanSettings.from_env())
    assert counting.writes == 2

    monkeypatch.setenv("EMR_PY_FILES_URI", f"s3://{lambda_env['ARTIFACTS_BUCKET']}/code/emr/emr_steps-v2.zip")
    refreshed = plan_run(counting, raw_input(lambda_env), PlanSettings.from_env())
    assert counting.writes == 4
    assert refreshed["run_id"] == first["run_id"]
    assert refreshed["emr_features_args"][4].split(",")[0].endswith("emr_steps-v2.zip")
    plan = store.get_json(first["plan_uri"])
    assert plan["emr_inference_args"][4].split(",")[0].endswith("emr_steps-v2.zip")
    assert plan["created_at"] == created_at


def test_given_run_id_with_a_different_input_is_refused(
    s3: Any, store: Any, lambda_env: dict[str, str]
) -> None:
    settings = PlanSettings.from_env()
    plan_run(s3, raw_input(lambda_env, run_id="weekly"), settings)
    before = store.get_json(f"s3://{lambda_env['ARTIFACTS_BUCKET']}/runs/clicks/weekly/plan.json")
    with pytest.raises(InvalidInput, match=r"run 'weekly' already has a plan .* made from a different input"):
        plan_run(s3, raw_input(lambda_env, run_id="weekly", quality_gate={"threshold": 0.9}), settings)
    assert store.get_json(f"s3://{lambda_env['ARTIFACTS_BUCKET']}/runs/clicks/weekly/plan.json") == before


RAW_EVENTS = "s3://{raw}/events/"
BAD_INPUTS = [
    ("unknown key", {"raw_uri": RAW_EVENTS, "epochs": 3}, "input: unknown key(s) 'epochs'; allowed keys:"),
    (
        "unknown candidate key",
        {"raw_uri": RAW_EVENTS, "candidates": [{"name": "a", "lr": 0.1}]},
        "input.candidates[0]: unknown key(s) 'lr'",
    ),
    (
        "raw uri outside project buckets",
        {"raw_uri": "s3://someone-elses-bucket/events/"},
        "input.raw_uri: s3://someone-elses-bucket/events/ is outside the project's buckets; "
        "it must be in s3://{raw}/",
    ),
    (
        "raw uri in another project bucket",
        {"raw_uri": "s3://{curated}/events/"},
        "input.raw_uri: s3://{curated}/events/ is outside the project's buckets",
    ),
    (
        "inference uri outside project buckets",
        {"raw_uri": RAW_EVENTS, "inference_input_uri": "s3://someone-elses-bucket/events/"},
        "input.inference_input_uri: s3://someone-elses-bucket/events/ is outside the project's buckets",
    ),
    (
        "raw uri outside the workload's raw prefix",
        {"raw_uri": "s3://{raw}/other-team/"},
        "input.raw_uri: s3://{raw}/other-team/ is not under the workload's raw prefix s3://{raw}/events/",
    ),
    (
        "inference uri outside the workload's curated data",
        {"raw_uri": RAW_EVENTS, "inference_input_uri": "s3://{curated}/curated/other-team/"},
        "input.inference_input_uri: s3://{curated}/curated/other-team/ is not under the workload's curated data "
        "s3://{curated}/curated/clicks/",
    ),
    (
        "gate looser than the workload's",
        {"raw_uri": RAW_EVENTS, "quality_gate": {"threshold": 0.69}},
        "input.quality_gate.threshold: 0.69 is looser than the workload's gate auc >= 0.7",
    ),
    (
        "raw uri with a character the registry refuses",
        {"raw_uri": "s3://{raw}/events/day(1)/"},
        "input.raw_uri: 's3://{raw}/events/day(1)/'",
    ),
    (
        "raw uri not a prefix",
        {"raw_uri": RAW_EVENTS + "day.jsonl"},
        "input.raw_uri: 's3://{raw}/events/day.jsonl'",
    ),
    (
        "too many candidates",
        {"raw_uri": RAW_EVENTS, "candidates": [{"name": f"c{i}"} for i in range(5)]},
        "input.candidates: 5 candidates given, at most 4 allowed",
    ),
    (
        "nodes not an integer",
        {"raw_uri": RAW_EVENTS, "candidates": [{"name": "a", "nodes": "2"}]},
        "input.candidates[0].nodes must be integer",
    ),
    (
        "nodes that no job definition runs",
        {"raw_uri": RAW_EVENTS, "candidates": [{"name": "a", "nodes": 3}]},
        "input.candidates[0].nodes: 3 nodes, but this deployment's multi-node job definition runs 2",
    ),
    (
        "gpus that the job definition does not give",
        {"raw_uri": RAW_EVENTS, "candidates": [{"name": "a", "nodes": 2, "gpus": 8}]},
        "input.candidates[0].gpus: 8 GPUs per node, but the job definition for 2 node(s) gives 4",
    ),
    (
        "too many nodes",
        {"raw_uri": RAW_EVENTS, "candidates": [{"name": "a", "nodes": 17}]},
        "input.candidates[0].nodes must be smaller than or equal to 16",
    ),
    (
        "hyperparameters not an object",
        {"raw_uri": RAW_EVENTS, "candidates": [{"name": "a", "hyperparameters": [1]}]},
        "input.candidates[0].hyperparameters must be object",
    ),
    (
        "nested hyperparameter value",
        {"raw_uri": RAW_EVENTS, "candidates": [{"name": "a", "hyperparameters": {"layers": {"a": 64}}}]},
        "input.candidates[0].hyperparameters.layers cannot be validated",
    ),
    (
        "hyperparameter list of non-numbers",
        {"raw_uri": RAW_EVENTS, "candidates": [{"name": "a", "hyperparameters": {"hidden": ["64"]}}]},
        "input.candidates[0].hyperparameters.hidden cannot be validated",
    ),
    (
        "hyperparameter list too long",
        {"raw_uri": RAW_EVENTS, "candidates": [{"name": "a", "hyperparameters": {"hidden": [8] * 9}}]},
        "input.candidates[0].hyperparameters.hidden cannot be validated",
    ),
    (
        "duplicate candidate names",
        {"raw_uri": RAW_EVENTS, "candidates": [{"name": "a"}, {"name": "b"}, {"name": "a"}]},
        "input.candidates[2].name 'a' is used by more than one candidate",
    ),
    (
        "name unsafe for S3 and Batch",
        {"raw_uri": RAW_EVENTS, "candidates": [{"name": "../a"}]},
        "input.candidates[0].name: '../a' is not valid",
    ),
    (
        "gate not a number",
        {"raw_uri": RAW_EVENTS, "quality_gate": {"threshold": "0.3"}},
        "input.quality_gate.threshold must be number",
    ),
    ("raw uri not a string", {"raw_uri": 42}, "input.raw_uri must be string"),
    ("not an object", RAW_EVENTS, "input must be object"),
]


def fill(value: Any, env: dict[str, str]) -> Any:
    """Substitute {raw} and {curated} with the test buckets."""
    text = json.dumps(value).replace("{raw}", env["RAW_BUCKET"]).replace("{curated}", env["CURATED_BUCKET"])
    return json.loads(text)


@pytest.mark.parametrize(("document", "message"), [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_raises_invalid_input_and_writes_nothing(
    document: Any, message: str, s3: Any, store: Any, lambda_env: dict[str, str]
) -> None:
    with pytest.raises(InvalidInput) as raised:
        handler(fill(document, lambda_env), None)
    assert str(raised.value).startswith(fill(message, lambda_env)), str(raised.value)
    assert store.keys(lambda_env["ARTIFACTS_BUCKET"]) == []


def test_misconfigured_environment_is_a_configuration_error(
    s3: Any, lambda_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEFAULT_CANDIDATES", json.dumps([{"name": "a"}, {"name": "a"}]))
    with pytest.raises(ConfigurationError, match=r"DEFAULT_CANDIDATES.*used by more than one candidate"):
        PlanSettings.from_env()
    monkeypatch.setenv("DEFAULT_CANDIDATES", "[{")
    with pytest.raises(ConfigurationError, match=r"DEFAULT_CANDIDATES is not valid JSON"):
        PlanSettings.from_env()
    monkeypatch.setenv("DEFAULT_CANDIDATES", lambda_env["DEFAULT_CANDIDATES"])
    monkeypatch.setenv("MAX_CANDIDATES", "0")
    with pytest.raises(ConfigurationError, match=r"MAX_CANDIDATES=0 is outside"):
        PlanSettings.from_env()
    monkeypatch.setenv("MAX_CANDIDATES", "4")
    monkeypatch.setenv("EMR_PY_FILES_URI", "/local/emr_steps.zip")
    with pytest.raises(ConfigurationError, match=r"EMR_PY_FILES_URI"):
        PlanSettings.from_env()
    monkeypatch.setenv("EMR_PY_FILES_URI", lambda_env["EMR_PY_FILES_URI"])
    monkeypatch.setenv("STAGES", '["features"]')  # the feature stage reads the curated data
    with pytest.raises(ConfigurationError, match=r"STAGES: features without clean"):
        PlanSettings.from_env()


@pytest.mark.parametrize("stages", [[], ["clean"]])
def test_without_a_feature_stage_the_jobs_read_the_data_itself(
    s3: Any, store: Any, lambda_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, stages: list[str]
) -> None:
    """No state of a stage the workload leaves out gets arguments; training and evaluation read the curated
    data (or, without a clean stage, the raw input), inference its input."""
    monkeypatch.setenv("STAGES", json.dumps(stages))
    for name in (
        "FEATURES_SCRIPT_URI",
        "INFERENCE_FEATURES_SCRIPT_URI",
        "EMR_PY_FILES_URI",
        "FEATURES_ARGUMENTS",
    ):
        monkeypatch.delenv(name)  # a workload without EMR steps has none of them
    raw, curated = lambda_env["RAW_BUCKET"], lambda_env["CURATED_BUCKET"]
    payload = handler(raw_input(lambda_env, run_id="lean-1"), None)
    expected = {
        "run_id",
        "plan_uri",
        "raw_uri",
        "manifest_uri",
        "inference_manifest_uri",
        "evaluation_output_uri",
    }
    assert set(payload) == expected | ({"glue_arguments"} if stages else set())
    data = f"s3://{curated}/curated/clicks/" if stages else f"s3://{raw}/events/"
    assert payload["manifest_uri"] == payload["inference_manifest_uri"] == data
    plan = store.get_json(payload["plan_uri"])
    assert plan["stages"] == stages
    # the plan names nothing of a stage the workload leaves out
    assert not {"features", "manifest", "inference_features", "inference_manifest"} & set(plan["uris"])
    assert not {"emr_features_args", "emr_inference_args"} & set(plan)
    clean = {"curated", "quarantine", "clean_report", "glue_arguments"}
    assert clean & {*plan["uris"], *plan} == (clean if stages else set())


def test_without_a_clean_stage_inference_input_lies_under_the_raw_prefix(
    s3: Any, store: Any, lambda_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STAGES", "[]")
    raw, curated = lambda_env["RAW_BUCKET"], lambda_env["CURATED_BUCKET"]
    payload = handler(raw_input(lambda_env, inference_input_uri=f"s3://{raw}/events/new/"), None)
    assert payload["inference_manifest_uri"] == f"s3://{raw}/events/new/"
    with pytest.raises(InvalidInput, match="inference_input_uri"):
        handler(raw_input(lambda_env, inference_input_uri=f"s3://{curated}/curated/clicks/"), None)


def test_the_workloads_spark_wheels_follow_its_code_on_the_py_files(
    s3: Any, store: Any, lambda_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    wheels = "s3://assets/a/rules-1.0-py3-none-any.whl,s3://assets/b/more-2.0-py3-none-any.whl"
    monkeypatch.setenv("SPARK_DEPENDENCY_URIS", wheels)
    payload = handler(raw_input(lambda_env, run_id="wheels-1"), None)
    for args in (payload["emr_features_args"], payload["emr_inference_args"]):
        py_files = args[args.index("--py-files") + 1]
        assert py_files == f"{lambda_env['EMR_PY_FILES_URI']},{lambda_env['WORKLOAD_CODE_URI']},{wheels}"
    monkeypatch.setenv("SPARK_DEPENDENCY_URIS", "not-a-uri")
    with pytest.raises(ConfigurationError, match="SPARK_DEPENDENCY_URIS"):
        handler(raw_input(lambda_env, run_id="wheels-2"), None)
