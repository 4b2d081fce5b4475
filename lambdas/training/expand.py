"""ExpandCandidates: turn the plan's candidates into the parameter maps of Batch SubmitJob calls.

Each parameter value is a string (Batch substitutes `Ref::<name>` in the job definition's command);
`hyperparameters` is the candidate's hyperparameters as one compact JSON object with sorted keys."""

from __future__ import annotations

import json
from typing import Any

from mlpipe_common.execution_input import check_candidate_names
from mlpipe_common.run_plan import training_input

JOB_NAME_MAX = 128  # Batch: letters, digits, '-' and '_', starting with a letter or digit


def job_name(run_id: str, candidate: str) -> str:
    name = f"mlpipe-{run_id}-{candidate}"
    if len(name) > JOB_NAME_MAX:  # cannot happen within the schema's limits (48 + 32 characters)
        raise ValueError(f"Batch job name {name!r} is longer than {JOB_NAME_MAX} characters")
    return name


def candidate_prefix(plan: dict[str, Any], name: str) -> str:
    """s3://<artifacts>/runs/<workload>/<run_id>/candidates/<name>/: the training container's --output."""
    return f"{plan['uris']['candidates']}{name}/"


def expand_candidates(plan: dict[str, Any]) -> dict[str, Any]:
    """The ExpandCandidates payload (stored at `$.training`)."""
    run_id = plan["run_id"]
    candidates = plan["candidates"]
    check_candidate_names([c.get("name") for c in candidates], where="plan.candidates")
    uris = plan["uris"]
    expanded = []
    for candidate in candidates:
        name = candidate["name"]
        nodes = int(candidate.get("nodes", 1))
        expanded.append(
            {
                "name": name,
                "job_name": job_name(run_id, name),
                "multi_node": nodes > 1,
                "num_nodes": nodes,
                "gpus": int(candidate.get("gpus", 1)),
                "parameters": {
                    "input": training_input(plan),
                    "output": candidate_prefix(plan, name),
                    "checkpoint": f"{uris['checkpoints']}{name}/",
                    "hyperparameters": json.dumps(
                        candidate.get("hyperparameters", {}), sort_keys=True, separators=(",", ":")
                    ),
                },
            }
        )
    return {"candidates": expanded}
