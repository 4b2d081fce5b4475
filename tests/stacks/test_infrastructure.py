"""Network, EMR, Batch, Glue and monitoring, as synthesized for dev and prod."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Capture, Match

pytestmark = pytest.mark.xdist_group("cdk")


REPO_ROOT = Path(__file__).resolve().parents[2]


def _of_type(template: dict[str, Any], type_: str) -> list[dict[str, Any]]:
    return [r for r in template["Resources"].values() if r["Type"] == type_]


def test_dev_network_costs_nothing_idle(dev: Any) -> None:
    t = dev.template("Network")
    t.resource_count_is("AWS::EC2::NatGateway", 0)
    t.resource_count_is("AWS::EC2::VPCEndpoint", 1)  # the S3 gateway endpoint, which costs nothing
    t.has_resource_properties(
        "AWS::EC2::VPCEndpoint",
        {"VpcEndpointType": "Gateway", "ServiceName": {"Fn::Join": ["", Match.array_with([".s3"])]}},
    )
    t.resource_count_is("AWS::EC2::Subnet", 2)
    for index in (0, 1):  # AZs are chosen by the template, not looked up at synth
        t.has_resource_properties(
            "AWS::EC2::Subnet",
            {"MapPublicIpOnLaunch": True, "AvailabilityZone": {"Fn::Select": [index, {"Fn::GetAZs": ""}]}},
        )
    t.has_resource_properties("AWS::EC2::FlowLog", {"LogDestinationType": "s3", "TrafficType": "ALL"})


def test_prod_network_runs_work_in_private_subnets_behind_nat(prod: Any) -> None:
    t = prod.template("Network")
    t.resource_count_is("AWS::EC2::NatGateway", 2)
    private = t.find_resources("AWS::EC2::Subnet", {"Properties": {"MapPublicIpOnLaunch": False}})
    assert len(private) == 2
    # each private subnet's default route leads to a NAT gateway
    routes = t.find_resources(
        "AWS::EC2::Route",
        {"Properties": {"DestinationCidrBlock": "0.0.0.0/0", "NatGatewayId": Match.any_value()}},
    )
    tables = [r["Properties"]["RouteTableId"] for r in routes.values()]
    associations = t.find_resources("AWS::EC2::SubnetRouteTableAssociation").values()
    routed = [
        a["Properties"]["SubnetId"]["Ref"] for a in associations if a["Properties"]["RouteTableId"] in tables
    ]
    assert sorted(routed) == sorted(private)


@pytest.mark.parametrize("synth_name", ["dev", "prod"])
def test_no_security_group_accepts_traffic_from_outside(synth_name: str, request: Any) -> None:
    synth = request.getfixturevalue(synth_name)
    for concern in ("Network", "Emr", "Batch"):
        t = synth.json(concern)
        for group in _of_type(t, "AWS::EC2::SecurityGroup"):
            for rule in group["Properties"].get("SecurityGroupIngress", []):
                assert rule.get("CidrIp") != "0.0.0.0/0" and rule.get("CidrIpv6") != "::/0", (concern, rule)
        for rule in _of_type(t, "AWS::EC2::SecurityGroupIngress"):
            assert "SourceSecurityGroupId" in rule["Properties"], (concern, rule)


def test_emr_encrypts_at_rest_and_in_transit(dev: Any) -> None:
    dev.template("Emr").has_resource_properties(
        "AWS::EMR::SecurityConfiguration",
        {
            "SecurityConfiguration": {
                "EncryptionConfiguration": Match.object_like(
                    {
                        "EnableAtRestEncryption": True,
                        "EnableInTransitEncryption": True,
                        "AtRestEncryptionConfiguration": {
                            "S3EncryptionConfiguration": Match.object_like({"EncryptionMode": "SSE-KMS"}),
                            "LocalDiskEncryptionConfiguration": Match.object_like(
                                {"EnableEbsEncryption": True}
                            ),
                        },
                        "InTransitEncryptionConfiguration": {
                            "TLSCertificateConfiguration": Match.object_like(
                                {"CertificateProviderType": "PEM"}
                            )
                        },
                    }
                )
            }
        },
    )


def test_transient_mode_has_no_idle_cluster(dev: Any) -> None:
    dev.template("Emr").resource_count_is("AWS::EMR::Cluster", 0)


def test_persistent_cluster_scales_on_spot_and_terminates_when_idle(prod: Any) -> None:
    t = prod.template("Emr")
    t.resource_count_is("AWS::EMR::Cluster", 1)
    release, task_spot, core_on_demand = Capture(), Capture(), Capture()
    t.has_resource_properties(
        "AWS::EMR::Cluster",
        {
            "ReleaseLabel": release,
            "AutoTerminationPolicy": {"IdleTimeout": 3600},
            "ManagedScalingPolicy": {"ComputeLimits": Match.object_like({"MaximumCapacityUnits": 40})},
            "Instances": Match.object_like(
                {
                    "TaskInstanceFleets": [
                        Match.object_like(
                            {
                                "TargetSpotCapacity": task_spot,
                                "LaunchSpecifications": {
                                    "SpotSpecification": Match.object_like(
                                        {"AllocationStrategy": "price-capacity-optimized"}
                                    )
                                },
                            }
                        )
                    ],
                    "CoreInstanceFleet": Match.object_like({"TargetOnDemandCapacity": core_on_demand}),
                    "ServiceAccessSecurityGroup": Match.any_value(),  # private subnets need it
                }
            ),
        },
    )
    assert release.as_string().startswith("emr-7.")
    assert task_spot.as_number() > 0 and core_on_demand.as_number() >= 1


def test_batch_hosts_require_imdsv2_and_encrypted_volumes(dev: Any) -> None:
    dev.template("Batch").has_resource_properties(
        "AWS::EC2::LaunchTemplate",
        {
            "LaunchTemplateData": Match.object_like(
                {
                    "MetadataOptions": Match.object_like({"HttpTokens": "required"}),
                    "BlockDeviceMappings": [
                        Match.object_like({"Ebs": Match.object_like({"Encrypted": True})})
                    ],
                }
            )
        },
    )


def test_batch_compute_scales_from_zero_spot_first(dev: Any) -> None:
    t = dev.json("Batch")
    envs = [e["Properties"]["ComputeResources"] for e in _of_type(t, "AWS::Batch::ComputeEnvironment")]
    assert sorted(e["Type"] for e in envs) == ["EC2", "EC2", "SPOT"]  # On-Demand, multi-node, Spot
    assert all(e["MinvCpus"] == 0 for e in envs)
    assert [e["AllocationStrategy"] for e in envs if e["Type"] == "SPOT"] == ["SPOT_PRICE_CAPACITY_OPTIMIZED"]
    queues = sorted(
        (q["Properties"]["Priority"], len(q["Properties"]["ComputeEnvironmentOrder"]))
        for q in _of_type(t, "AWS::Batch::JobQueue")
    )
    assert queues == [(10, 2), (20, 1)]


def test_the_two_environment_queue_tries_spot_first_then_on_demand(dev: Any) -> None:
    template = dev.template("Batch")
    first, then = Capture(), Capture()
    template.has_resource_properties(
        "AWS::Batch::JobQueue",
        {
            "ComputeEnvironmentOrder": [
                {"Order": 1, "ComputeEnvironment": {"Fn::GetAtt": [first, "ComputeEnvironmentArn"]}},
                {"Order": 2, "ComputeEnvironment": {"Fn::GetAtt": [then, "ComputeEnvironmentArn"]}},
            ]
        },
    )
    environments = template.find_resources("AWS::Batch::ComputeEnvironment")
    kind = {name: e["Properties"]["ComputeResources"]["Type"] for name, e in environments.items()}
    assert (kind[first.as_string()], kind[then.as_string()]) == ("SPOT", "EC2")


@pytest.mark.parametrize(("synth_name", "max_vcpus"), [("dev", 96), ("prod", 384)])
def test_multi_node_jobs_run_on_their_own_environment_in_one_subnet_and_a_cluster_placement_group(
    synth_name: str, max_vcpus: int, request: Any
) -> None:
    """AWS Batch user guide, "Compute environments for multi-node parallel jobs": create a cluster placement
    group in a single Availability Zone and associate it with the compute resources."""
    synth = request.getfixturevalue(synth_name)
    resources = synth.json("Batch")["Resources"]
    (queue,) = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::Batch::JobQueue" and r["Properties"]["Priority"] == 20  # the On-Demand queue
    ]
    ((environment_id, _),) = [o["ComputeEnvironment"]["Fn::GetAtt"] for o in queue["ComputeEnvironmentOrder"]]
    compute = resources[environment_id]["Properties"]["ComputeResources"]
    assert compute["Type"] == "EC2" and compute["InstanceTypes"] == [
        synth.config.batch.multinode_instance_type
    ]
    assert len(compute["Subnets"]) == 1 and compute["MinvCpus"] == 0 and compute["MaxvCpus"] == max_vcpus
    (group_id, _) = compute["PlacementGroup"]["Fn::GetAtt"]
    assert resources[group_id]["Type"] == "AWS::EC2::PlacementGroup"
    assert resources[group_id]["Properties"]["Strategy"] == "cluster"
    # the Spot-first queue's On-Demand fallback keeps every On-Demand type, in every subnet
    others = [
        r["Properties"]["ComputeResources"]
        for k, r in resources.items()
        if r["Type"] == "AWS::Batch::ComputeEnvironment" and k != environment_id
    ]
    assert all(len(c["Subnets"]) > 1 and "PlacementGroup" not in c for c in others)


def test_training_retries_spot_reclaims_only_and_times_out(dev: Any) -> None:
    defs = _of_type(dev.json(dev.workload), "AWS::Batch::JobDefinition")
    assert len(defs) == 4  # training, multi-node training, evaluation, inference
    for d in defs:
        p = d["Properties"]
        assert p["RetryStrategy"]["EvaluateOnExit"] == [
            {"Action": "RETRY", "OnStatusReason": "Host EC2*"},
            {"Action": "EXIT", "OnReason": "*"},
        ]
        assert p["RetryStrategy"]["Attempts"] == 3 and p["Timeout"]["AttemptDurationSeconds"] == 240 * 60
    (multi,) = [d["Properties"] for d in defs if d["Properties"]["Type"] == "multinode"]
    nodes = multi["NodeProperties"]
    assert nodes["NumNodes"] == 2 and nodes["MainNode"] == 0
    gpus = nodes["NodeRangeProperties"][0]["Container"]["ResourceRequirements"]
    assert {"Type": "GPU", "Value": "4"} in gpus


def test_a_native_crash_in_a_job_leaves_python_tracebacks_in_its_log(dev: Any) -> None:
    for d in _of_type(dev.json(dev.workload), "AWS::Batch::JobDefinition"):
        p = d["Properties"]
        container = p.get("ContainerProperties") or p["NodeProperties"]["NodeRangeProperties"][0]["Container"]
        assert {"Name": "PYTHONFAULTHANDLER", "Value": "1"} in container["Environment"]


def test_training_and_inference_jobs_have_their_own_roles(dev: Any) -> None:
    """Both read features and write run outputs; only training may touch checkpoints. (Evaluation runs as
    inference does.)"""
    t = dev.template(dev.workload)
    role_of: dict[str, str] = {}
    for d in t.find_resources("AWS::Batch::JobDefinition").values():
        p = d["Properties"]
        container = p.get("ContainerProperties") or p["NodeProperties"]["NodeRangeProperties"][0]["Container"]
        kind = "inference" if "mlpipe_batch.infer" in container["Command"] else "training"
        role = container["JobRoleArn"]["Fn::GetAtt"][0]
        assert role_of.setdefault(kind, role) == role, "one role per kind of job"
    assert set(role_of) == {"training", "inference"} and role_of["training"] != role_of["inference"]

    def object_prefixes(role: str) -> set[str]:
        (policy,) = t.find_resources("AWS::IAM::Policy", {"Properties": {"Roles": [{"Ref": role}]}}).values()
        resources = [
            r
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
            if "s3:PutObject" in statement["Action"] or "s3:GetObject" in statement["Action"]
            for r in (
                statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            )
        ]
        # ".../features/clickstream/*" -> features/clickstream
        return {"/".join(json.dumps(r).rsplit("/", 3)[-3:-1]) for r in resources}

    # each kind of data of the workload's own, nothing of another workload
    assert object_prefixes(role_of["training"]) == {
        "features/clickstream",
        "runs/clickstream",
        "checkpoints/clickstream",
    }
    assert object_prefixes(role_of["inference"]) == {"features/clickstream", "runs/clickstream"}


def test_images_build_on_the_deep_learning_container(dev: Any) -> None:
    assets = json.loads((dev.outdir / f"{dev.config.stack_name('Batch')}.assets.json").read_text())
    images = list(assets["dockerImages"].values())
    assert len(images) == 1  # one image for training and inference: built and pushed once
    job_images = {
        json.dumps(_image_of(d["Properties"]))
        for d in _of_type(dev.json(dev.workload), "AWS::Batch::JobDefinition")
    }
    assert len(job_images) == 1
    for image in images:
        base = image["source"]["dockerBuildArgs"]["BASE_IMAGE"]
        assert base == "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.8-gpu-py312"


def test_glue_job_is_51_with_bookmarks_and_encryption(dev: Any) -> None:
    t = dev.template(dev.workload)
    t.has_resource_properties(
        "AWS::Glue::Job",
        {
            "GlueVersion": "5.1",
            "Command": Match.object_like({"Name": "glueetl"}),
            "DefaultArguments": Match.object_like({"--job-bookmark-option": "job-bookmark-enable"}),
            "SecurityConfiguration": Match.any_value(),
            "WorkerType": "G.1X",
            "NumberOfWorkers": 4,
        },
    )
    t.has_resource_properties(
        "AWS::Glue::SecurityConfiguration",
        {
            "EncryptionConfiguration": {
                "CloudWatchEncryption": Match.object_like({"CloudWatchEncryptionMode": "SSE-KMS"}),
                "JobBookmarksEncryption": Match.object_like({"JobBookmarksEncryptionMode": "CSE-KMS"}),
                "S3Encryptions": [Match.object_like({"S3EncryptionMode": "SSE-KMS"})],
            }
        },
    )


def test_glue_runs_the_driver_with_the_workloads_module_from_its_code_package(dev: Any) -> None:
    template = dev.json(dev.workload)
    (job,) = _of_type(template, "AWS::Glue::Job")
    args = job["Properties"]["DefaultArguments"]
    # examples/clickstream/workload.toml decides these; the run adds --input, --output, --quarantine, --report.
    assert {
        k: args[k]
        for k in ("--workload-module", "--dedupe-key", "--order-by", "--partition-column", "--format")
    } == {
        "--workload-module": "clean",
        "--dedupe-key": "event_id",
        "--order-by": "ts",
        "--partition-column": "dt",
        "--format": "jsonl",
    }
    assets = json.loads(
        dev.path(dev.workload).with_name(f"{dev.config.stack_name(dev.workload)}.assets.json").read_text()
    )
    sources = {a["source"]["path"]: a["destinations"] for a in assets["files"].values()}
    script_arg = json.dumps(job["Properties"]["Command"]["ScriptLocation"])
    scripts = [p for p in sources if next(iter(sources[p].values()))["objectKey"] in script_arg]
    packages = [p for p in sources if p.endswith(".zip") and zipfile.is_zipfile(dev.outdir / p)
                and "workload.toml" in zipfile.ZipFile(dev.outdir / p).namelist()]  # fmt: skip
    assert len(packages) == 1 and len(scripts) == 1
    package_key = next(iter(sources[packages[0]].values()))["objectKey"]
    assert package_key in json.dumps(args["--extra-py-files"])
    with zipfile.ZipFile(
        dev.outdir / packages[0]
    ) as archive:  # the workload folder, as the driver imports it
        assert {"workload.toml", "clean.py"} <= set(archive.namelist())
    assert (dev.outdir / scripts[0]).read_bytes() == (
        REPO_ROOT / "glue_jobs" / "mlpipe_clean.py"
    ).read_bytes()
    reads = [
        s for p in _of_type(template, "AWS::IAM::Policy") for s in p["Properties"]["PolicyDocument"]["Statement"]
        if "s3:GetObject" in s["Action"] and package_key in json.dumps(s["Resource"])
    ]  # fmt: skip
    assert reads, "the job's role reads its code package"


def test_emr_steps_get_the_workloads_feature_module_and_arguments_from_its_manifest(dev: Any) -> None:
    pipeline = dev.json(dev.workload)
    (plan,) = [
        f["Properties"]["Environment"]["Variables"]
        for f in _of_type(pipeline, "AWS::Lambda::Function")
        if "FEATURES_ARGUMENTS" in f["Properties"]["Environment"]["Variables"]
    ]
    assert json.loads(plan["FEATURES_ARGUMENTS"]) == [
        "--workload-module", "features", "--id-column", "event_id", "--label-column", "label", "--split-by", "time",
        "--time-column", "ts", "--validation-fraction", "0.1", "--test-fraction", "0.1",
    ]  # fmt: skip
    assert json.loads(plan["INFERENCE_FEATURES_ARGUMENTS"]) == ["--workload-module", "features"]
    package_key = json.dumps(plan["WORKLOAD_CODE_URI"]).split("/")[-1].split('"')[0]
    assert package_key.endswith(".zip")
    reads = [
        s for p in _of_type(pipeline, "AWS::IAM::Policy") for s in p["Properties"]["PolicyDocument"]["Statement"]
        if "s3:GetObject" in s["Action"] and package_key in json.dumps(s["Resource"])
    ]  # fmt: skip
    assert reads, "the workload's EMR role reads its code package"


def test_failed_executions_alarm_to_the_topic(dev: Any) -> None:
    t = dev.template("Monitoring")
    t.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": "ExecutionsFailed",
            "Namespace": "AWS/States",
            "Threshold": 1,
            "AlarmActions": [Match.any_value()],
        },
    )
    t.resource_count_is("AWS::CloudWatch::Dashboard", 1)


def test_prod_endpoints_profile_reaches_aws_without_nat(tmp_path: Any, context_for: Any) -> None:
    import aws_cdk as cdk

    from mlpipe.config import load_config
    from stacks.network_stack import NetworkStack
    from stacks.validation import add_checks

    context = context_for("prod", network={"prod_egress": "endpoints"})
    app = cdk.App(context=context, outdir=str(tmp_path))
    config = load_config(context, environ={})
    stack = NetworkStack(app, "N", config=config, env=cdk.Environment(region=config.region))
    add_checks(app)
    t = app.synth().get_stack_by_name(stack.stack_name).template
    assert _of_type(t, "AWS::EC2::NatGateway") == []
    assert _of_type(t, "AWS::EC2::InternetGateway") == []
    endpoints = _of_type(t, "AWS::EC2::VPCEndpoint")
    interface = [e for e in endpoints if e["Properties"]["VpcEndpointType"] == "Interface"]
    assert len(interface) == 10 and all(e["Properties"]["PrivateDnsEnabled"] for e in interface)
    names = {json.dumps(e["Properties"]["ServiceName"]) for e in interface}
    assert any("ecr.dkr" in n for n in names) and any("elasticmapreduce" in n for n in names)


def test_emr_may_launch_into_the_workload_subnets(dev: Any, prod: Any) -> None:
    # AmazonEMRServicePolicy_v2 creates instances only in subnets tagged for it.
    for synth, public in ((dev, True), (prod, False)):
        workload = [
            s
            for s in _of_type(synth.json("Network"), "AWS::EC2::Subnet")
            if s["Properties"]["MapPublicIpOnLaunch"] is public
        ]
        assert len(workload) == 2
        for subnet in workload:
            assert {"Key": "for-use-with-amazon-emr-managed-policies", "Value": "true"} in subnet[
                "Properties"
            ]["Tags"]


def test_persistent_cluster_waits_for_its_security_configuration(prod: Any) -> None:
    template = prod.json("Emr")
    (cluster,) = _of_type(template, "AWS::EMR::Cluster")
    (config_id,) = [
        k for k, r in template["Resources"].items() if r["Type"] == "AWS::EMR::SecurityConfiguration"
    ]
    assert config_id in cluster["DependsOn"]
    name = template["Resources"][config_id]["Properties"]["Name"]
    assert cluster["Properties"]["SecurityConfiguration"] == name and name.startswith("mlpipe-prod-")


def test_a_security_configuration_is_named_after_its_content() -> None:
    """Any change to an EMR or Glue security configuration replaces it, and a fixed name makes that
    replacement fail (CloudFormation creates the new resource before deleting the old). So its name carries a
    digest of its content, references included: another key reference means another name. (The project key
    itself arrives as a handoff parameter and is never replaced by an update: CloudFormation refuses changes to
    a key's KeySpec, KeyUsage, Origin and MultiRegion.)"""
    import aws_cdk as cdk
    from aws_cdk import aws_kms as kms

    from stacks.constructs.common import content_name

    stack = cdk.Stack(cdk.App(), "S")
    first, second = kms.Key(stack, "First"), kms.Key(stack, "Second")

    def named(key: kms.IKey, mode: str = "SSE-KMS") -> str:
        return content_name(stack, "mlpipe-dev", {"S3": {"EncryptionMode": mode, "AwsKmsKey": key.key_arn}})

    assert named(first) == named(first)  # the same content, the same name: a redeploy changes nothing
    assert len({named(first), named(second), named(first, "CSE-KMS")}) == 3
    assert re.fullmatch(r"mlpipe-dev-[0-9a-f]{8}", named(first))


def test_clusters_and_jobs_use_the_content_named_configurations(dev: Any, prod: Any, both: Any) -> None:
    def names(synth: Any, concern: str, kind: str) -> list[str]:
        return [
            r["Properties"]["Name"] for r in synth.json(concern)["Resources"].values() if r["Type"] == kind
        ]

    emr = {
        s: names(synth, "Emr", "AWS::EMR::SecurityConfiguration")
        for s, synth in (("dev", dev), ("prod", prod))
    }
    assert emr["dev"] != emr["prod"]  # prod's persistent cluster adds the runtime-role authorization
    assert names(both, "Emr", "AWS::EMR::SecurityConfiguration") == emr["dev"]  # same content, same name
    glue = {
        w: names(both, f"Workload-{w}", "AWS::Glue::SecurityConfiguration")
        for w in ("clickstream", "regression")
    }
    assert [n.rsplit("-", 1)[0] for n in glue["clickstream"]] == ["MlpipeDev-Workload-clickstream-clean"]
    assert glue["clickstream"] != glue["regression"]
    for resource in dev.json(dev.workload)["Resources"].values():
        if resource["Type"] == "AWS::Glue::Job":  # by Ref, which gives the configuration's name
            config_id = resource["Properties"]["SecurityConfiguration"]["Ref"]
            assert (
                dev.json(dev.workload)["Resources"][config_id]["Type"] == "AWS::Glue::SecurityConfiguration"
            )


def test_docker_builds_find_their_dockerfiles_in_the_staged_context(dev: Any) -> None:
    assets = json.loads((dev.outdir / f"{dev.config.stack_name('Batch')}.assets.json").read_text())
    for image in assets["dockerImages"].values():
        context = dev.outdir / image["source"]["directory"]
        assert (context / image["source"].get("dockerFile", "Dockerfile")).is_file(), image["source"]
        assert (context / "src" / "mlpipe_batch" / "train.py").is_file()


def test_jobs_that_cannot_start_are_cancelled(dev: Any) -> None:
    for queue in _of_type(dev.json("Batch"), "AWS::Batch::JobQueue"):
        actions = queue["Properties"]["JobStateTimeLimitActions"]
        assert {a["Reason"] for a in actions} == {
            "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
            "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE",
            "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
        }
        assert all(
            a["Action"] == "CANCEL" and a["State"] == "RUNNABLE" and a["MaxTimeSeconds"] == 14_400
            for a in actions
        )


def test_flow_logs_may_be_delivered_to_the_logs_bucket(dev: Any) -> None:
    policies = _of_type(dev.json("Storage"), "AWS::S3::BucketPolicy")
    statements = [
        s
        for p in policies
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Principal") == {"Service": "delivery.logs.amazonaws.com"}
    ]
    assert {s["Sid"] for s in statements} == {"FlowLogDeliveryWrite", "FlowLogDeliveryAclCheck"}
    assert all("aws:SourceAccount" in s["Condition"]["StringEquals"] for s in statements)


def _image_of(properties: dict[str, Any]) -> Any:
    if "ContainerProperties" in properties:
        return properties["ContainerProperties"]["Image"]
    return properties["NodeProperties"]["NodeRangeProperties"][0]["Container"]["Image"]
