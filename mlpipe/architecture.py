"""Render the architecture picture (Mermaid) from a synthesized cloud assembly.

    python -m mlpipe.architecture cdk.out > docs/architecture.md

The picture is drawn from what `cdk synth` wrote: the stacks and their main resources, and the state
machine's states as the definition links them. tests/stacks/test_architecture_doc.py regenerates it from
the test synthesis and fails when docs/architecture.md is stale.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_MAIN_TYPES = {
    "AWS::S3::Bucket": "S3 bucket",
    "AWS::KMS::Key": "KMS key",
    "AWS::Glue::Database": "Glue database",
    "AWS::Glue::Table": "Glue table",
    "AWS::EC2::VPC": "VPC",
    "AWS::EC2::NatGateway": "NAT gateway",
    "AWS::EC2::VPCEndpoint": "VPC endpoint",
    "AWS::EMR::SecurityConfiguration": "EMR security configuration",
    "AWS::EMR::Cluster": "EMR cluster",
    "AWS::Batch::ComputeEnvironment": "Batch compute environment",
    "AWS::Batch::JobQueue": "Batch job queue",
    "AWS::Batch::SchedulingPolicy": "fair-share scheduling policy",
    "AWS::Batch::JobDefinition": "Batch job definition",
    "AWS::Batch::ConsumableResource": "Batch consumable resource (vCPU cap)",
    "AWS::Glue::Job": "Glue job",
    "AWS::Lambda::Function": "Lambda function",
    "AWS::StepFunctions::StateMachine": "state machine",
    "AWS::SNS::Topic": "SNS topic",
    "AWS::SageMaker::ModelPackageGroup": "model package group",
    "AWS::CloudWatch::Dashboard": "dashboard",
    "AWS::CloudWatch::Alarm": "alarm",
}
_SERVICE = re.compile(r":states:::([a-z]+):([A-Za-z]+)(\.sync)?")


def _definition(template: dict[str, Any]) -> dict[str, Any] | None:
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::StepFunctions::StateMachine":
            parts = resource["Properties"]["DefinitionString"]["Fn::Join"][1]
            return json.loads("".join(p if isinstance(p, str) else "REF" for p in parts))  # type: ignore[no-any-return]
    return None


def _node_id(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", name)


def _label(state: dict[str, Any]) -> str:
    resource = state.get("Resource", "")
    match = _SERVICE.search(resource)
    if match:
        return f"{match.group(1)} {match.group(2)}{match.group(3) or ''}"
    if state["Type"] == "Task":
        return "Lambda"
    return str(state["Type"])


def _flow(node: dict[str, Any], prefix: str, indent: str) -> Iterator[str]:
    """Mermaid lines for a state-machine graph; failure handlers are left out (every task has one)."""
    states = {
        n: s
        for n, s in node["States"].items()
        if not n.endswith(" failed")
        and s["Type"] != "Fail"
        and n not in ("NotifyFailure", "ClusterToTerminate?", "TerminateClusterAfterFailure")
    }
    for name, state in states.items():
        nid = prefix + _node_id(name)
        if state["Type"] == "Parallel" or "ItemProcessor" in state:
            yield f'{indent}subgraph {nid}["{name} ({state["Type"]})"]'
            subs = state.get("Branches") or [state["ItemProcessor"]]
            for i, branch in enumerate(subs):
                yield from _flow(branch, f"{nid}_{i}_", indent + "  ")
            yield f"{indent}end"
        else:
            yield f'{indent}{nid}["{name}<br/><small>{_label(state)}</small>"]'
    for name, state in states.items():
        targets = [state["Next"]] if "Next" in state else []
        targets += [c["Next"] for c in state.get("Choices", [])]
        targets += [state["Default"]] if "Default" in state else []
        for target in targets:
            if target in states:
                yield f"{indent}{prefix + _node_id(name)} --> {prefix + _node_id(target)}"


def render(assembly: Path) -> str:
    templates = {
        p.name.removesuffix(".template.json"): json.loads(p.read_text())
        for p in sorted(assembly.glob("*.template.json"))
    }
    lines = [
        "# Architecture",
        "",
        "Generated from the synthesized templates by `python -m mlpipe.architecture cdk.out`",
        "(the dev environment, transient EMR); a test keeps it current.",
        "",
        "## Stacks",
        "",
        "| stack | main resources |",
        "|---|---|",
    ]
    for name, template in templates.items():
        counts: dict[str, int] = {}
        for resource in template["Resources"].values():
            label = _MAIN_TYPES.get(resource["Type"])
            if label:
                counts[label] = counts.get(label, 0) + 1
        summary = ", ".join(f"{n} {label}{'s' if n > 1 else ''}" for label, n in counts.items())
        lines.append(f"| {name} | {summary} |")
    lines += [
        "",
        "## The pipeline (Step Functions)",
        "",
        "Every task also retries transient errors with backoff and jitter and is caught: the failure is "
        "published to the SNS topic, a transient EMR cluster is terminated, and the execution fails.",
        "",
        "```mermaid",
        "flowchart TD",
    ]
    for template in templates.values():
        definition = _definition(template)
        if definition is not None:
            lines += list(_flow(definition, "", "  "))
    lines += ["```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_dir():
        print("usage: python -m mlpipe.architecture <cloud assembly directory>", file=sys.stderr)
        sys.exit(2)
    print(render(Path(sys.argv[1])), end="")
