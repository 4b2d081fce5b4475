"""The five Lambda states chained as the state machine chains them (contracts.md), payload to payload."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from inference.handler import handler as inference
from preprocessing.handler import handler as preprocessing
from training.handler import handler as training


def test_plan_expand_select_gate_register(
    sagemaker: Any,
    store: Any,
    put_candidate: Callable[..., None],
    put_evaluation: Callable[..., str],
    lambda_env: dict[str, str],
) -> None:
    execution_input = {
        "raw_uri": f"s3://{lambda_env['RAW_BUCKET']}/events/",
        "candidates": [{"name": "mlp-a", "hyperparameters": {"lr": 0.01}}, {"name": "mlp-b", "nodes": 2}],
    }
    plan = preprocessing(execution_input, None)  # $.plan
    document = store.get_json(plan["plan_uri"])

    training_payload = training({"action": "expand", "plan_uri": plan["plan_uri"]}, None)  # $.training
    for auc, candidate in zip((0.84, 0.82), training_payload["candidates"], strict=True):  # the Batch jobs
        output = candidate["parameters"]["output"]
        assert output == f"{document['uris']['candidates']}{candidate['name']}/"
        put_candidate(document, candidate["name"], auc)
        assert candidate["parameters"]["input"] == plan["manifest_uri"]

    names = [c["name"] for c in training_payload["candidates"]]
    model = training({"action": "select", "plan_uri": plan["plan_uri"], "candidates": names}, None)  # $.model
    assert model["best_candidate"] == "mlp-a"

    put_evaluation(document, {"auc": 0.83})  # the EvaluateModel Batch job, at plan["evaluation_output_uri"]
    assert plan["evaluation_output_uri"] == document["uris"]["evaluation_output"]
    evaluation = inference(
        {
            "action": "gate",
            "plan_uri": plan["plan_uri"],
            "model_manifest_uri": model["model_manifest_uri"],
        },
        None,
    )
    register_event = {
        "action": "register",
        "plan_uri": plan["plan_uri"],
        "model_manifest_uri": model["model_manifest_uri"],
        "evaluation_uri": evaluation["evaluation_uri"],
    }
    registered = training(register_event, None)

    # a restart of the same execution input maps to the same run and the same model package
    assert preprocessing(execution_input, None) == plan
    assert training(register_event, None) == registered
    group = lambda_env["MODEL_PACKAGE_GROUP"]
    assert len(sagemaker.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]) == 1

    for payload in (plan, training_payload, model, evaluation, registered):
        assert len(json.dumps(payload)) < 8192  # S3 pointers and small fields only
    assert store.keys(lambda_env["ARTIFACTS_BUCKET"], "tmp/") == []
