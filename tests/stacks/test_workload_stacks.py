"""One platform, many workloads: a pipeline stack per workload, the shared parts deployed once, and nothing of
one workload in another's stack."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlpipe.workload import WorkloadError, check_unique, load, share_identifier

# With the other stack tests: the session's in-process synths (`both`, and jsii's kernel under them) are made
# once, by the worker that runs the group, not again by another.
pytestmark = pytest.mark.xdist_group("cdk")

REPO_ROOT = Path(__file__).resolve().parents[2]
STATEFUL = json.loads((Path(__file__).with_name("stateful_resources.json")).read_text())


def _resources(synth: Any, concern: str, kind: str | None = None) -> dict[str, Any]:
    """The resources of a stack, without the construct-path metadata that only the CLI's synth writes."""
    resources: dict[str, Any] = synth.json(concern)["Resources"]
    return {
        k: {key: value for key, value in r.items() if key != "Metadata"}
        for k, r in resources.items()
        if kind is None or r["Type"] == kind
    }


def _states(node: Any) -> list[dict[str, Any]]:
    """Every state of a definition, nested ones included."""
    found = []
    for state in node.get("States", {}).values():
        found.append(state)
        for branch in state.get("Branches", []):
            found += _states(branch)
        if "ItemProcessor" in state:
            found += _states(state["ItemProcessor"])
    return found


def _definition(synth: Any, concern: str) -> dict[str, Any]:
    (machine,) = _resources(synth, concern, "AWS::StepFunctions::StateMachine").values()
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    return json.loads("".join(p if isinstance(p, str) else "REF" for p in parts))


@pytest.mark.parametrize("synth_name", ["dev", "both"])
def test_stateful_resources_keep_the_logical_ids_they_were_deployed_with(
    synth_name: str, request: Any
) -> None:
    """tests/stacks/stateful_resources.json holds the retained resources of the single-pipeline templates: a new
    logical id would make CloudFormation create a new bucket, key or database (and orphan the old one)."""
    synth = request.getfixturevalue(synth_name)
    for concern, resources in STATEFUL.items():
        present = _resources(synth, concern)
        for logical_id, kind in resources.items():
            assert logical_id in present, f"{concern}: {logical_id} ({kind}) is gone"
            assert present[logical_id]["Type"] == kind
            assert present[logical_id]["DeletionPolicy"] == "Retain"


def test_fair_share_queues_are_new_queues_not_the_fifo_ones_updated(dev: Any) -> None:
    """Batch cannot add a fair-share policy to a queue created without one (CreateJobQueue:
    schedulingPolicyArn), so the queues with the policy must not keep the FIFO queues' logical ids
    (tests/stacks/fifo_queues.json, from the templates before fair share), or the update would fail."""
    fifo = json.loads(Path(__file__).with_name("fifo_queues.json").read_text())["Batch"]
    queues = _resources(dev, "Batch", "AWS::Batch::JobQueue")
    assert len(queues) == 2 and all("SchedulingPolicyArn" in q["Properties"] for q in queues.values())
    assert not set(queues) & set(fifo)


def test_adding_a_workload_changes_no_resource_of_another(dev: Any, both: Any) -> None:
    """The clickstream's stack is the same with or without the regression workload beside it; the shared
    stacks keep every resource, and only the fair-share policy and the dashboard change (in place)."""
    assert _resources(dev, "Workload-clickstream") == _resources(both, "Workload-clickstream")
    assert dev.json("Workload-clickstream")["Outputs"] == both.json("Workload-clickstream")["Outputs"]
    for concern in ("Storage", "Network", "Emr", "Batch", "Monitoring"):
        alone, together = _resources(dev, concern), _resources(both, concern)
        assert set(alone) <= set(together), concern
        changed = {k for k in alone if alone[k] != together[k]}
        # the fair-share policy (a share per workload), the dashboard (a section per workload) and the
        # certificates' alarm (every workload's topic), each updated in place
        assert {k for k in changed if alone[k]["Type"] == "AWS::CloudWatch::Alarm"} <= {
            k for k in alone if k.startswith("MonitoringEmrCertificatesExpiring")
        }, (concern, changed)
        assert {alone[k]["Type"] for k in changed} <= {
            "AWS::Batch::SchedulingPolicy",
            "AWS::CloudWatch::Dashboard",
            "AWS::CloudWatch::Alarm",
        }, (concern, changed)


def test_each_workload_has_its_own_pipeline_stack(both: Any) -> None:
    for name in ("clickstream", "regression"):
        concern = f"Workload-{name}"
        assert len(_resources(both, concern, "AWS::StepFunctions::StateMachine")) == 1
        assert len(_resources(both, concern, "AWS::Glue::Job")) == 1
        assert len(_resources(both, concern, "AWS::Batch::JobDefinition")) == 4
        (group,) = _resources(both, concern, "AWS::SageMaker::ModelPackageGroup").values()
        assert group["Properties"]["ModelPackageGroupName"] == f"mlpipe-dev-{name}"
        outputs = both.json(concern)["Outputs"]
        assert outputs["Workload"]["Value"] == name
    # the shared parts exist once
    assert len(_resources(both, "Batch", "AWS::Batch::ComputeEnvironment")) == 3
    assert len(_resources(both, "Emr", "AWS::EMR::SecurityConfiguration")) == 1
    assert len(_resources(both, "Monitoring", "AWS::CloudWatch::Dashboard")) == 1
    assert (
        len(_resources(both, "Monitoring", "AWS::CloudWatch::Alarm")) == 5
    )  # two per workload, certificates


def test_a_workloads_roles_name_nothing_of_another_workload(both: Any) -> None:
    for name, other in (("clickstream", "regression"), ("regression", "clickstream")):
        policies = json.dumps(
            [
                *_resources(both, f"Workload-{name}", "AWS::IAM::Policy").values(),
                *_resources(both, f"Workload-{name}", "AWS::IAM::Role").values(),
            ]
        )
        assert f"/{name}/" in policies
        assert other not in policies, f"{name}'s roles mention {other}"
        # and no grant on a kind of data across workloads (e.g. features/*)
        for kind in (
            "curated",
            "quarantine",
            "reports",
            "features",
            "runs",
            "checkpoints",
            "tmp/runs",
            "tmp/glue",
        ):
            assert f"/{kind}/*" not in policies and f"/{kind}*" not in policies, (name, kind)


def test_the_queues_share_fairly_one_share_per_workload(both: Any) -> None:
    (policy,) = _resources(both, "Batch", "AWS::Batch::SchedulingPolicy").values()
    shares = policy["Properties"]["FairsharePolicy"]["ShareDistribution"]
    assert shares == [
        {"ShareIdentifier": "clickstream", "WeightFactor": 1},
        {"ShareIdentifier": "regression", "WeightFactor": 1},
    ]
    (policy_id,) = _resources(both, "Batch", "AWS::Batch::SchedulingPolicy")
    for queue in _resources(both, "Batch", "AWS::Batch::JobQueue").values():
        assert queue["Properties"]["SchedulingPolicyArn"] == {"Fn::GetAtt": [policy_id, "Arn"]}


@pytest.mark.parametrize("name", ["clickstream", "regression"])
def test_every_batch_job_a_pipeline_submits_names_its_workloads_share(both: Any, name: str) -> None:
    """SubmitJob to a queue with a fair-share policy fails without a share identifier (AWS Batch API
    reference, SubmitJob: shareIdentifier)."""
    submits = [s for s in _states(_definition(both, f"Workload-{name}"))
               if s.get("Resource", "").endswith(":states:::batch:submitJob.sync")]  # fmt: skip
    assert len(submits) == 4  # single-node and multi-node training, evaluation, inference
    assert {s["Parameters"]["ShareIdentifier"] for s in submits} == {share_identifier(name)}
    # the job's attempt timeout; the state's bound also counts RUNNABLE time (behind other shares, up to the
    # queues' limit) before each of the 3 attempts (Batch's job timeouts start at an attempt's startedAt)
    assert all(s["Parameters"]["Timeout"] == {"AttemptDurationSeconds": 240 * 60} for s in submits)
    assert {s["TimeoutSeconds"] for s in submits} == {(3 * (240 + 240) + 10) * 60}
    # and the state machine may submit under that share only
    statements = [
        s
        for p in _resources(both, f"Workload-{name}", "AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if "batch:SubmitJob" in s["Action"]
    ]
    assert statements and all(
        s["Condition"] == {"StringEquals": {"batch:ShareIdentifier": share_identifier(name)}}
        for s in statements
    )


def test_each_workloads_jobs_hold_vcpus_of_its_own_cap(both: Any) -> None:
    for name, cap in (("clickstream", 128), ("regression", 100)):
        concern = f"Workload-{name}"
        ((resource_id, resource),) = _resources(both, concern, "AWS::Batch::ConsumableResource").items()
        assert resource["Properties"]["TotalQuantity"] == cap
        assert resource["Properties"]["ConsumableResourceName"] == f"mlpipe-dev-{name}-vcpus"
        for definition in _resources(both, concern, "AWS::Batch::JobDefinition").values():
            props = definition["Properties"]
            holder = props["NodeProperties"]["NodeRangeProperties"][0] if "NodeProperties" in props else props
            container = holder.get("Container") or holder["ContainerProperties"]
            vcpus = next(int(r["Value"]) for r in container["ResourceRequirements"] if r["Type"] == "VCPU")
            # a fair-share queue refuses a job with no scheduling priority (in its definition or its submission)
            assert isinstance(props["SchedulingPriority"], int)
            (consumed,) = holder["ConsumableResourceProperties"]["ConsumableResourceList"]
            assert consumed == {
                "ConsumableResource": {"Fn::GetAtt": [resource_id, "ConsumableResourceArn"]},
                "Quantity": vcpus,
            }


def test_two_workload_names_with_one_share_identifier_are_refused(tmp_path: Path) -> None:
    """Batch share identifiers are letters and digits (SubmitJob: shareIdentifier), so '-' is dropped."""
    first = load(REPO_ROOT / "examples" / "clickstream")
    assert share_identifier("churn-model-2") == "churnmodel2"
    renamed = [first.__class__(**{**first.__dict__, "name": n}) for n in ("click-stream", "clickstream")]
    with pytest.raises(WorkloadError, match="one Batch share identifier, 'clickstream'"):
        check_unique(renamed)


def test_a_search_deploys_as_its_candidates_within_the_environments_limit(
    tmp_path: Path, context_for: Any
) -> None:
    import shutil

    import aws_cdk as cdk

    from mlpipe.config import load_config
    from stacks.platform import create_platform

    folder = tmp_path / "clickstream"
    shutil.copytree(REPO_ROOT / "examples" / "clickstream", folder)
    manifest = folder / "workload.toml"
    head = manifest.read_text().split("[[candidates]]")[0]
    config = load_config(context_for("dev"), environ={})  # pipeline.max_candidates = 8
    manifest.write_text(
        head + '[search]\nkind = "grid"\nspace = { lr = [0.1, 0.01, 0.001], epochs = [1, 2, 3] }\n'
    )
    with pytest.raises(
        WorkloadError,
        match=r"search: makes 9 candidates, more than environments\.dev\.pipeline\.max_candidates \(8\)",
    ):
        create_platform(cdk.App(), config, workloads=[load(folder)])


def test_transient_clusters_of_two_workloads_share_no_security_group(both: Any) -> None:
    """EMR opens its managed groups to each other: clusters in the same groups could reach each other's nodes,
    which run as another workload's instance role."""
    assert not _resources(both, "Emr", "AWS::EC2::SecurityGroup")
    groups = {
        name: set(_resources(both, f"Workload-{name}", "AWS::EC2::SecurityGroup"))
        for name in ("clickstream", "regression")
    }
    assert all(len(g) == 2 for g in groups.values())  # primary and core (dev: no private subnets)
    for name, mine in groups.items():
        (machine,) = _resources(both, f"Workload-{name}", "AWS::StepFunctions::StateMachine").values()
        definition = json.dumps(machine["Properties"]["DefinitionString"])  # with its references
        assert all(group in definition for group in mine)  # the CreateCluster task uses its own


def test_a_persistent_clusters_steps_run_as_each_workloads_runtime_role(prod: Any) -> None:
    (security,) = _resources(prod, "Emr", "AWS::EMR::SecurityConfiguration").values()
    iam_config = security["Properties"]["SecurityConfiguration"]["AuthorizationConfiguration"][
        "IAMConfiguration"
    ]
    assert iam_config["EnableApplicationScopedIAMRole"] is True
    roles = _resources(prod, prod.workload, "AWS::IAM::Role")
    (runtime,) = [lid for lid in roles if "RuntimeRole" in lid]
    statements = [
        (p["Properties"].get("Roles"), s)
        for p in _resources(prod, prod.workload, "AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    # the shared cluster's role may assume this workload's runtime role (and nothing else through this policy)
    assumed = [(r, s) for r, s in statements if "sts:AssumeRole" in s["Action"]]
    assert assumed == [
        (
            ["mlpipe-prod-us-east-1-emr-cluster"],
            {"Action": ["sts:AssumeRole", "sts:SetSourceIdentity"], "Effect": "Allow",
             "Resource": {"Fn::GetAtt": [runtime, "Arn"]}},
        )
    ]  # fmt: skip
    # the state machine passes it with each step
    assert any(
        s["Action"] == "iam:PassRole" and s["Resource"] == {"Fn::GetAtt": [runtime, "Arn"]}
        for _, s in statements
    )
    steps = [s for s in _states(_definition(prod, prod.workload)) if "addStep" in s.get("Resource", "")]
    assert steps and all("ExecutionRoleArn" in s["Parameters"] for s in steps)


def test_a_workload_with_a_dockerfile_runs_its_jobs_in_its_own_image_on_mlpipes(
    both: Any, regression_dockerfile: str
) -> None:
    def images(concern: str) -> set[str]:
        return {
            json.dumps((d["Properties"].get("ContainerProperties") or
                        d["Properties"]["NodeProperties"]["NodeRangeProperties"][0]["Container"])["Image"])
            for d in _resources(both, concern, "AWS::Batch::JobDefinition").values()
        }  # fmt: skip

    (mlpipe_image,) = images("Workload-clickstream")
    (own_image,) = images("Workload-regression")  # all four jobs, one image
    assert own_image != mlpipe_image
    assets = json.loads((both.outdir / "MlpipeDev-Workload-regression.assets.json").read_text())
    (image,) = assets["dockerImages"].values()
    source = image["source"]
    assert source["dockerFile"] == "Dockerfile.mlpipe"
    assert source["dockerBuildArgs"]["BASE_IMAGE"].endswith("pytorch-training:2.8-gpu-py312")
    context = both.outdir / source["directory"]
    dockerfile = (context / "Dockerfile.mlpipe").read_text()
    # mlpipe's image as the stage `mlpipe`, then the workload's lines, in the workload's folder
    assert " AS mlpipe\n" in dockerfile and dockerfile.endswith(regression_dockerfile)
    assert dockerfile.index(" AS mlpipe") < dockerfile.index(regression_dockerfile)
    assert (context / "extra-requirements.txt").is_file() and (context / "train.py").is_file()
    assert (context / ".mlpipe" / "src" / "mlpipe_batch" / "run.py").is_file()
    assert "COPY .mlpipe/src/ src/" in dockerfile
    # Docker splits FROM into words before it expands variables: one word, or three with AS
    froms = [line.split() for line in dockerfile.splitlines() if line.startswith("FROM ")]
    assert [len(words) for words in froms] == [4, 2] and froms[0][2:] == ["AS", "mlpipe"]


def test_mlpipes_dockerfile_parses_as_docker_reads_a_from_line() -> None:
    dockerfile = (REPO_ROOT / "batch_containers" / "Dockerfile").read_text()
    froms = [line.split() for line in dockerfile.splitlines() if line.startswith("FROM ")]
    assert [len(words) for words in froms] == [2]
