"""The state machine and the Lambdas, as synthesized."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aws_cdk.assertions import Match

pytestmark = pytest.mark.xdist_group("cdk")


def definition(synth: Any) -> dict[str, Any]:
    """The state machine definition, its CloudFormation references replaced by a placeholder."""
    template = synth.json(synth.workload)
    (machine,) = [
        r for r in template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"
    ]
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    return json.loads("".join(p if isinstance(p, str) else "REF" for p in parts))


def states(node: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every state, nested ones (Parallel branches, Map processors) included."""
    for name, state in node["States"].items():
        yield name, state
        for branch in state.get("Branches", []):
            yield from states(branch)
        if "ItemProcessor" in state:
            yield from states(state["ItemProcessor"])


def test_parallel_states_join_glue_emr_batch_and_lambdas(dev: Any) -> None:
    top = definition(dev)["States"]
    prepare = {s for b in top["PrepareData"]["Branches"] for s in b["States"]}
    assert {"CleanData", "CreateCluster"} <= prepare
    train = top["TrainAndPrepareInference"]["Branches"]
    assert train[0]["States"]["TrainCandidates"]["Type"] == "Map"
    assert "BuildInferenceFeatures" in train[1]["States"] and "TerminateCluster" in train[1]["States"]
    publish = {s for b in top["Publish"]["Branches"] for s in b["States"]}
    assert {"RegisterModel", "BatchInference"} <= publish


def test_work_runs_through_sync_integrations(dev: Any) -> None:
    resources = {name: s.get("Resource", "") for name, s in states(definition(dev))}
    assert resources["CleanData"].endswith(":states:::glue:startJobRun.sync")
    assert resources["CreateCluster"].endswith(":states:::elasticmapreduce:createCluster.sync")
    assert resources["BuildFeatures"].endswith(":states:::elasticmapreduce:addStep.sync")
    assert resources["TerminateCluster"].endswith(":states:::elasticmapreduce:terminateCluster.sync")
    for job in ("TrainSingleNode", "TrainMultiNode", "BatchInference"):
        assert resources[job].endswith(":states:::batch:submitJob.sync"), job


def test_every_task_retries_with_jitter_has_a_timeout_and_is_caught(dev: Any) -> None:
    tasks = [(n, s) for n, s in states(definition(dev)) if s["Type"] == "Task"]
    assert len(tasks) >= 12
    for name, state in tasks:
        assert state["TimeoutSeconds"] > 0, name  # the .sync jobs' own limits are not enough: see below
        retries = state.get("Retry", [])
        assert retries and all(r["JitterStrategy"] == "FULL" and r["BackoffRate"] > 1 for r in retries), name
        assert "States.ALL" not in [e for r in retries for e in r["ErrorEquals"]], (
            f"{name} retries everything"
        )
        if name not in ("NotifyFailure", "TerminateClusterAfterFailure"):
            assert any("States.ALL" in c["ErrorEquals"] for c in state.get("Catch", [])), name


def test_the_glue_state_outlasts_the_run_it_starts(dev: Any) -> None:
    """Glue's .sync integration passes the job's Timeout (minutes) to the run; a run that cannot get resources
    first retries for up to 15 minutes (Glue, "job run statuses"). The state's bound covers both, plus a
    margin, and Step Functions may start, follow and stop that one job."""
    clean = dict(states(definition(dev)))["CleanData"]
    assert clean["Parameters"]["Timeout"] == 120
    assert clean["TimeoutSeconds"] == (15 + 120 + 10) * 60
    assert clean["Parameters"]["Arguments.$"] == "$.plan.glue_arguments"
    assert clean["ResultPath"] == "$.clean" and set(clean["ResultSelector"]) == {
        "JobRunId.$",
        "JobRunState.$",
    }
    policies = [
        s
        for r in dev.json(dev.workload)["Resources"].values()
        if r["Type"] == "AWS::IAM::Policy"
        for s in r["Properties"]["PolicyDocument"]["Statement"]
        if any(
            str(a).startswith("glue:")
            for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
        )
    ]
    (glue,) = policies
    assert sorted(glue["Action"]) == [
        "glue:BatchStopJobRun",
        "glue:GetJobRun",
        "glue:GetJobRuns",
        "glue:StartJobRun",
    ]
    assert ":job/" in json.dumps(glue["Resource"]) and "*" not in json.dumps(glue["Resource"])


def test_failures_notify_once_then_fail_with_the_cause(dev: Any) -> None:
    top = definition(dev)["States"]
    handler = top[top["TrainAndPrepareInference"]["Catch"][0]["Next"]]
    assert handler["Type"] == "Pass" and handler["Next"] == "NotifyFailure"
    assert top["NotifyFailure"]["Resource"].endswith(":states:::sns:publish")
    assert top["PipelineFailed"] == {
        "Type": "Fail",
        "ErrorPath": "$.failure.error",
        "CausePath": "$.failure.cause",
    }
    # A transient cluster is terminated on the way out.
    assert top["ClusterToTerminate?"]["Choices"][0]["Next"] == "TerminateClusterAfterFailure"
    # Inside a branch, the cause is rewritten to name the state that failed.
    branch_states = dict(states(top["PrepareData"]["Branches"][0]))
    assert branch_states["CleanData failed"]["Parameters"]["cause.$"].startswith(
        "States.Format('CleanData failed"
    )


def test_payloads_are_pointers_not_data(dev: Any) -> None:
    top = definition(dev)["States"]
    assert "Parameters" not in top["Plan"] and "InputPath" not in top["Plan"]  # Plan gets the execution input
    for name in ("Plan", "ExpandCandidates", "SelectModel", "EvaluateModel"):
        assert top[name]["ResultPath"].startswith("$."), name
    train = dict(states(top["TrainAndPrepareInference"]["Branches"][0]))
    assert train["TrainSingleNode"]["ResultSelector"] == {"JobId.$": "$.JobId", "Status.$": "$.Status"}


def test_persistent_mode_adds_steps_to_the_stack_cluster(prod: Any) -> None:
    top = definition(prod)["States"]
    assert "PrepareData" not in top and "CreateCluster" not in str(top)
    assert top["DescribePersistentCluster"]["Parameters"] == {"ClusterId": "REF"}
    assert (
        top["ClusterRunning?"]["Default"] == "BuildFeatures"
    )  # a terminated cluster fails with a clear cause
    assert "TerminateCluster" not in str(top)


GRANTED_CLUSTER_ACTIONS = {
    "elasticmapreduce:AddJobFlowSteps",
    "elasticmapreduce:DescribeStep",
    "elasticmapreduce:CancelSteps",
    "elasticmapreduce:DescribeCluster",
}


@pytest.mark.parametrize("synth_name", ["dev", "prod"])
def test_emr_cluster_actions_reach_only_the_pipelines_clusters(synth_name: str, request: Any) -> None:
    """RunJobFlow is the one EMR action on "*" (no resource type). Transient: the rest on this account's and
    region's clusters (a run's cluster id exists only at run time); persistent: on the stack's cluster only."""
    synth = request.getfixturevalue(synth_name)
    (policy,) = (
        synth.template(synth.workload)
        .find_resources(
            "AWS::IAM::Policy",
            {"Properties": {"Roles": [{"Ref": Match.string_like_regexp("^PipelineStateMachineRole")}]}},
        )
        .values()
    )
    resources: dict[str, list[Any]] = {}
    for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
        for action in _list(statement["Action"]):
            if action.startswith("elasticmapreduce:"):
                resources.setdefault(action, []).extend(_list(statement["Resource"]))
    arn = ["arn:aws:elasticmapreduce:us-east-1:", {"Ref": "AWS::AccountId"}, ":cluster/"]
    if synth_name == "dev":
        assert resources.pop("elasticmapreduce:RunJobFlow") == ["*"]
        # RunJobFlow tags the cluster (EMR's managed-policy tag): AddTags is checked on the new cluster's ARN
        tagging = {"elasticmapreduce:TerminateJobFlows", "elasticmapreduce:AddTags"}
        assert set(resources) == GRANTED_CLUSTER_ACTIONS | tagging
        for action, arns in resources.items():
            assert arns == [{"Fn::Join": ["", [*arn[:2], arn[2] + "*"]]}], action
    else:  # the ARN of the Emr stack's AWS::EMR::Cluster, whose id the Emr stack hands over
        assert set(resources) == GRANTED_CLUSTER_ACTIONS
        (cluster,) = synth.template("Emr").find_resources("AWS::EMR::Cluster")
        for action, arns in resources.items():
            ((join,),) = [a["Fn::Join"][1:] for a in arns]
            assert join[:3] == arn, action
            assert synth.handed_over(synth.workload, join[3]) == ("Emr", {"Ref": cluster}), action


def test_state_machine_logs_everything_encrypted_and_traces(dev: Any) -> None:
    t = dev.template(dev.workload)
    t.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "StateMachineType": "STANDARD",
            "TracingConfiguration": {"Enabled": True},
            "LoggingConfiguration": Match.object_like({"Level": "ALL", "IncludeExecutionData": True}),
        },
    )
    t.all_resources_properties("AWS::Logs::LogGroup", {"KmsKeyId": Match.any_value()})
    t.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": Match.any_value()})


def test_lambdas_run_latest_python_on_arm_with_their_own_roles(dev: Any) -> None:
    t = dev.template(dev.workload)
    functions = t.find_resources("AWS::Lambda::Function")
    assert len(functions) == 3
    roles = {json.dumps(f["Properties"]["Role"]) for f in functions.values()}
    assert len(roles) == 3, "one role per function"
    for f in functions.values():
        p = f["Properties"]
        assert p["Runtime"] == "python3.14" and p["Architectures"] == ["arm64"]
        assert p["TracingConfig"] == {"Mode": "Active"}
        assert p["Handler"].endswith(".handler.handler")


def test_lineage_records_a_digest_of_the_deployed_code(dev: Any, tmp_path: Path) -> None:
    import mlpipe
    from stacks.constructs.pipeline import code_revision
    from stacks.defaults import LAMBDAS_DIR

    functions = dev.template(dev.workload).find_resources("AWS::Lambda::Function")
    versions = {f["Properties"]["Environment"]["Variables"].get("CODE_VERSION") for f in functions.values()}
    (version,) = versions - {None}
    assert re.fullmatch(r"sha256:[0-9a-f]{16}", version) and mlpipe.__version__ not in version

    def assets(image: str, workload: str = "w1", glue: str = "a") -> tuple[Any, Any, Any, str]:
        asset, package = SimpleNamespace(asset_hash="a"), SimpleNamespace(sha256=workload)
        emr = SimpleNamespace(features_script=asset, inference_features_script=asset, py_files=asset)
        return (
            package,
            SimpleNamespace(script=SimpleNamespace(asset_hash=glue)),
            emr,
            image,
        )

    code = tmp_path / "lambdas"
    shutil.copytree(LAMBDAS_DIR, code, ignore=shutil.ignore_patterns("__pycache__"))
    before = code_revision(code, *assets("i1"))
    assert code_revision(code, *assets("i1")) == before
    assert code_revision(code, *assets("i2")) != before  # a new training image
    assert code_revision(code, *assets("i1", workload="w2")) != before  # the workload's own code changed
    assert (
        code_revision(code, *assets("i1", glue="b")) != before
    )  # the Glue driver (or the workload's script)
    package, _, _, image = assets("i1")
    assert code_revision(code, package, None, None, image) != before  # a workload without Spark stages
    handler = code / "training" / "handler.py"
    handler.write_text(handler.read_text() + "\n# changed\n")
    assert code_revision(code, *assets("i1")) != before  # new Lambda code


def test_training_lambda_may_only_register_in_its_own_group(dev: Any) -> None:
    statements = [
        s
        for p in dev.json(dev.workload)["Resources"].values()
        if p["Type"] == "AWS::IAM::Policy"
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if any(str(a).startswith("sagemaker:") for a in _list(s["Action"]))
    ]
    by_action = {a: s for s in statements for a in _list(s["Action"])}
    assert set(by_action) == {
        "sagemaker:CreateModelPackage",
        "sagemaker:DescribeModelPackage",
        "sagemaker:ListModelPackages",
    }
    assert "model-package/mlpipe-dev-clickstream/*" in json.dumps(
        by_action["sagemaker:CreateModelPackage"]["Resource"]
    )
    assert by_action["sagemaker:ListModelPackages"]["Resource"] == "*"  # no resource-level permissions


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_a_glue_failure_keeps_the_cluster_id_so_the_cluster_is_terminated(dev: Any) -> None:
    top = definition(dev)["States"]
    assert top["PrepareData"]["ResultSelector"] == {
        "ClusterId.$": "$[1].cluster.ClusterId",
        "Clean.$": "$[0]",
    }
    clean_branch = top["PrepareData"]["Branches"][0]["States"]
    assert clean_branch["CleanData"]["Catch"][0]["Next"] == "CleanData failed"
    assert (
        "Next" not in clean_branch["CleanData failed"]
    )  # the branch ends well: the Parallel keeps the cluster
    check = top["DataCleaned?"]
    assert check["Choices"][0]["Variable"] == "$.cluster.Clean.failed"
    assert top[check["Choices"][0]["Next"]]["Next"] == "NotifyFailure"
    assert check["Default"] == "BuildFeatures"


def test_state_machine_may_stop_and_poll_the_jobs_it_starts(dev: Any) -> None:
    statements = [
        s
        for r in dev.json(dev.workload)["Resources"].values()
        if r["Type"] == "AWS::IAM::Policy" and "StateMachine" in json.dumps(r["Properties"]["Roles"])
        for s in r["Properties"]["PolicyDocument"]["Statement"]
    ]
    actions = {a for s in statements for a in _list(s["Action"])}
    assert {
        "batch:SubmitJob",
        "batch:DescribeJobs",
        "batch:TerminateJob",
        "sns:Publish",
        "glue:StartJobRun",
        "glue:GetJobRun",
        "elasticmapreduce:AddJobFlowSteps",
        "iam:PassRole",
    } <= actions
    # SubmitJob carries no Tags (which would need batch:TagResource): the job definitions propagate theirs.
    submits = [
        s for _, s in states(definition(dev)) if s.get("Resource", "").endswith("batch:submitJob.sync")
    ]
    assert submits and all("Tags" not in s["Parameters"] for s in submits)


def test_only_plain_emr_statements_are_narrowed_and_only_their_cluster_actions() -> None:
    from aws_cdk import aws_iam as iam

    from stacks.constructs.pipeline import narrow_emr_statement

    emr = "elasticmapreduce:"

    def narrowed(**statement: Any) -> list[Any]:
        result = narrow_emr_statement(iam.PolicyStatement(**statement), "arn:one", "arn:region/*")
        return [s.to_statement_json() for s in result]

    create = [f"{emr}RunJobFlow", f"{emr}DescribeCluster", f"{emr}TerminateJobFlows", f"{emr}AddTags"]
    assert narrowed(actions=create, resources=["*"]) == [
        {"Action": f"{emr}RunJobFlow", "Effect": "Allow", "Resource": "*"},
        {
            "Action": [f"{emr}DescribeCluster", f"{emr}TerminateJobFlows"],
            "Effect": "Allow",
            "Resource": "arn:one",
        },
        {"Action": f"{emr}AddTags", "Effect": "Allow", "Resource": "arn:region/*"},
    ]
    steps = [f"{emr}AddJobFlowSteps", f"{emr}DescribeStep", f"{emr}CancelSteps"]
    assert narrowed(actions=steps, resources=["arn:aws:elasticmapreduce:r:a:cluster/*"]) == [
        {"Action": steps, "Effect": "Allow", "Resource": "arn:one"}
    ]
    # An EMR action without the cluster resource type stays where it is.
    assert narrowed(actions=[f"{emr}ListClusters", f"{emr}DescribeCluster"], resources=["*"]) == [
        {"Action": f"{emr}ListClusters", "Effect": "Allow", "Resource": "*"},
        {"Action": f"{emr}DescribeCluster", "Effect": "Allow", "Resource": "arn:one"},
    ]
    unchanged: list[dict[str, Any]] = [
        {
            "actions": [f"{emr}DescribeCluster"],
            "resources": ["*"],
            "conditions": {"StringEquals": {"k": "v"}},
        },
        {"actions": [f"{emr}DescribeCluster"], "resources": ["*"], "effect": iam.Effect.DENY},
        {"actions": [f"{emr}DescribeCluster"], "resources": ["*"], "sid": "Named"},
        {"actions": [f"{emr}DescribeCluster", "logs:DescribeLogGroups"], "resources": ["*"]},
        {"actions": [f"{emr}DescribeCluster"], "resources": ["arn:aws:elasticmapreduce:r:a:cluster/j-1"]},
    ]
    for statement in unchanged:
        assert narrowed(**statement) == [iam.PolicyStatement(**statement).to_statement_json()], statement


def test_each_lambda_can_write_what_it_commits_and_nothing_of_another_workload(dev: Any) -> None:
    """The keys that put_json_atomic writes (the object and its temporary) fall under the role's object
    grants, which all lie under the workload's own prefixes."""
    import fnmatch
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lambdas"))
    from mlpipe_common.s3 import S3Uri, temporary

    template = dev.json(dev.workload)
    functions = [r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    for function in functions:
        role = function["Properties"]["Role"]["Fn::GetAtt"][0]
        (policy,) = [
            r
            for r in template["Resources"].values()
            if r["Type"] == "AWS::IAM::Policy" and {"Ref": role} in r["Properties"]["Roles"]
        ]
        writable = [
            resource["Fn::Join"][1][-1].split("/", 1)[1]  # "<bucket name's end>/runs/clickstream/*"
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
            if "s3:PutObject" in statement["Action"]
            for resource in (
                statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            )
        ]
        assert writable and all(
            p.startswith(("runs/clickstream/", "tmp/runs/clickstream/")) for p in writable
        )
        for key in ("runs/clickstream/r-1/plan.json", "runs/clickstream/r-1/evaluation.json"):
            for written in (key, temporary(S3Uri("artifacts", key)).key):
                assert any(fnmatch.fnmatchcase(written, p) for p in writable), (written, writable)
