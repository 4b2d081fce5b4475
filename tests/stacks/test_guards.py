"""Synth-time guards: a configuration that could break an AWS limit at run time fails synth instead."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from mlpipe.config import ConfigError, load_config
from stacks import guards

pytestmark = pytest.mark.xdist_group("cdk")
REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_deployed_configuration_fits_every_limit(dev: Any, context_for: Any) -> None:
    config = load_config(context_for("dev"), environ={})
    bounds = guards.training_parameter_bounds(63)
    assert (
        guards.check_batch_command("training", ["python", "-m", "x", "--h", "Ref::hyperparameters"], bounds)
        < 8192
    )
    assert guards.check_candidates_payload(config, 63) < 256 * 1024


def test_hyperparameter_bounds_come_from_the_execution_input_schema() -> None:
    # 16 properties x (64-character name, longest value: a list of 8 numbers) fits; the schema enforces it.
    longest = guards.longest_hyperparameters_json()
    assert 2_000 < longest < 5_000
    with pytest.raises(guards.GuardError, match="training: its command could reach"):
        guards.check_batch_command(
            "training", ["Ref::hyperparameters", "Ref::hyperparameters"], {"hyperparameters": 5_000}
        )


def _largest_execution_input(candidates: int) -> dict[str, Any]:
    """A valid execution input with every field at its longest: the case the payload guard must cover."""
    uri = "s3://" + "b" * 63 + "/events/" + "a" * 123 + "/"  # the schema's longest: 200 characters
    number = -1.2345678901234567e-308
    hyperparameters = {f"h{i:02d}".ljust(64, "x"): [number] * 8 for i in range(16)}
    return {
        "raw_uri": uri,
        "run_id": "r" * 48,
        "candidates": [
            {"name": f"c{i:02d}".ljust(32, "n"), "hyperparameters": hyperparameters, "nodes": 16, "gpus": 8}
            for i in range(candidates)
        ],
        "quality_gate": {"threshold": 0.999},
        "features": {"target_shard_mb": 1024},
        "inference_input_uri": uri,
    }


@pytest.mark.parametrize("candidates", [1, 23])
def test_the_execution_input_bound_covers_the_largest_valid_input(candidates: int) -> None:
    import fastjsonschema  # the preprocessing Lambda's validator

    schema = json.loads(guards.EXECUTION_INPUT_SCHEMA.read_text())
    document = _largest_execution_input(candidates)
    assert set(document) == set(schema["properties"])  # a new input field must be added here too
    fastjsonschema.compile(schema)(document)
    assert len(document["raw_uri"]) == 200
    written = json.dumps(document, separators=(",", ":"))
    assert len(written) <= guards.longest_execution_input(candidates) < 1.2 * len(written)


def test_the_payload_counts_the_execution_input_that_every_state_keeps(context_for: Any) -> None:
    # Plan keeps the execution input (its result goes to $.plan), so after ExpandCandidates each candidate's
    # hyperparameters are in the state twice: in the input and in its Batch parameters.
    config = load_config(context_for("dev", pipeline={"max_candidates": 23}), environ={})
    size = guards.check_candidates_payload(config, 63)
    assert size > 23 * 2 * guards.longest_hyperparameters_json()
    config = load_config(context_for("dev", pipeline={"max_candidates": 24}), environ={})
    with pytest.raises(guards.GuardError, match=r"24 candidates could make .* 258 KiB.* at most 23 fit"):
        guards.check_candidates_payload(config, 63)


def test_too_many_candidates_for_one_state_payload(context_for: Any) -> None:
    config = load_config(context_for("dev", pipeline={"max_candidates": 64}), environ={})
    with pytest.raises(
        guards.GuardError, match=r"pipeline.max_candidates: 64 candidates could make .* 256 KiB"
    ):
        guards.check_candidates_payload(config, 63)


def _graph(synth: Any) -> Any:
    """The workload's state machine definition, references read as "REF"."""
    template = synth.json(synth.workload)
    (machine,) = [
        r for r in template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"
    ]
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    return json.loads("".join(p if isinstance(p, str) else "REF" for p in parts))


def test_too_many_candidates_for_the_execution_history(dev: Any, context_for: Any) -> None:
    graph = _graph(dev)
    config = load_config(context_for("dev"), environ={})
    events = guards.check_history(config, graph)
    assert 200 < events < 2_000
    huge = dataclasses.replace(config, pipeline=dataclasses.replace(config.pipeline, max_candidates=2_000))
    with pytest.raises(guards.GuardError, match=r"2000 candidates could write \d+ history events"):
        guards.check_history(huge, graph)


def test_every_task_ends_through_its_catch_before_the_execution_times_out(dev: Any, context_for: Any) -> None:
    """An execution that times out runs no Catch: no notification, no cluster terminated. So every Task has
    its own TimeoutSeconds, and the execution's outlasts a run whose every task takes all of its own, the
    training Map's rounds and the failure path included."""
    graph = _graph(dev)
    config = load_config(context_for("dev"), environ={})
    batch = (3 * (240 + 240) + 10) * 60  # a Batch job: 3 attempts, each RUNNABLE then running, + 10 min
    longest = guards.check_task_timeouts(config, graph)
    # Plan; Glue (2 h + 25 min) beside the cluster's start; the feature step; 8 candidates 4 at a time: 2 rounds
    # of training beside the inference features; selection; evaluation; gate; inference beside registration;
    # then the failure path (notify, terminate the cluster)
    lambda_ = 6 * 60
    expected = lambda_ + (15 + 120 + 10) * 60 + 6 * 3600 + lambda_ + 2 * batch + lambda_ + batch + lambda_
    expected += batch + 60 + 30 * 60
    assert longest == expected and graph["TimeoutSeconds"] == 120 * 3600 > longest

    with pytest.raises(
        guards.GuardError, match=r"^pipeline.execution_timeout_hours: .* lasts 106.0 h .* at least 107"
    ):
        guards.check_task_timeouts(config, {**graph, "TimeoutSeconds": 48 * 3600})
    fewer = dataclasses.replace(config, pipeline=dataclasses.replace(config.pipeline, max_candidates=4))
    assert guards.check_task_timeouts(fewer, graph) == expected - batch  # one round of training
    unbounded = json.loads(json.dumps(graph))
    del unbounded["States"]["PrepareData"]["Branches"][0]["States"]["CleanData"]["TimeoutSeconds"]
    with pytest.raises(guards.GuardError, match=r"task state\(s\) without TimeoutSeconds: CleanData"):
        guards.check_task_timeouts(config, unbounded)


def test_lambda_environment_over_4_kib_fails() -> None:
    with pytest.raises(guards.GuardError, match="Lambda Preprocessing: its environment would be"):
        guards.check_lambda_environment("Preprocessing", {"DEFAULT_CANDIDATES": "x" * 5000})


def test_synth_fails_with_the_guard_message(context_for: Any, tmp_path: Path) -> None:
    import aws_cdk as cdk

    from mlpipe.workload import load_all
    from stacks.platform import create_platform

    context = context_for("dev", pipeline={"max_candidates": 60})
    app = cdk.App(context=context, outdir=str(tmp_path))
    with pytest.raises(
        guards.GuardError, match=r"pipeline\.max_candidates: 60 candidates could make"
    ) as raised:
        config = load_config(context, environ={})
        workloads = load_all(config.workloads, REPO_ROOT)
        create_platform(app, config, workloads=workloads)  # app.py turns this into one line and exit 2
    assert isinstance(raised.value, ConfigError)
    assert not list(tmp_path.rglob("*.template.json"))


def test_an_unknown_deep_learning_container_version_names_the_key() -> None:
    from mlpipe.config import ConfigError
    from stacks.dlc_image import dlc_training_image

    with pytest.raises(
        ConfigError, match=r"batch.dlc_pytorch_version: .* no PyTorch 9.9 \(py312\) .* us-east-1"
    ):
        dlc_training_image("us-east-1", "9.9", "py312")


def test_the_execution_inputs_uris_use_the_pattern_the_guard_counts_unescaped() -> None:
    schema = json.loads(guards.EXECUTION_INPUT_SCHEMA.read_text())
    for field in ("raw_uri", "inference_input_uri"):
        assert schema["properties"][field]["pattern"] == guards.S3_URI_PATTERN, field
