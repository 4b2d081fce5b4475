"""Read a synthesized cloud assembly (`cdk synth`'s output folder) and resolve its CloudFormation references
to local names.

CloudFormation gives each resource a physical name at deploy time. Locally there is no deployment, so every
reference resolves to a deterministic stand-in: the name the template gives (`FunctionName`, `BucketName`,
`Name`, ...) when it gives one, otherwise `<stack name>-<logical id>`; ARNs are built from that name, the
assembly's region and `account`. Only the intrinsics that the templates use are understood (`Ref`,
`Fn::GetAtt`, `Fn::Join`, `Fn::Sub`, and the Parameter Store parameters that one stack of the assembly stores
for another); anything else raises
`UnresolvableReference`, so a template that changes shape fails loudly instead of resolving to nonsense.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# moto's default account: clients with any fake credentials land in it.
DEFAULT_ACCOUNT = "123456789012"
PARTITION = "aws"
URL_SUFFIX = "amazonaws.com"
# The tag that the platform puts on each workload stack's resources (stacks/platform.py).
WORKLOAD_TAG = "mlpipe:workload"


class UnresolvableReference(ValueError):
    """A template value uses an intrinsic, a resource type or an attribute that the resolver does not know."""


@dataclass(frozen=True)
class Stack:
    name: str
    region: str
    template: Mapping[str, Any]

    @property
    def resources(self) -> Mapping[str, Any]:
        resources: Mapping[str, Any] = self.template.get("Resources", {})
        return resources

    def of_type(self, resource_type: str) -> dict[str, Mapping[str, Any]]:
        """Logical id -> resource, for every resource of `resource_type`."""
        return {lid: r for lid, r in self.resources.items() if r.get("Type") == resource_type}

    def workload(self) -> str | None:
        """The workload whose pipeline this stack deploys (its resources' WORKLOAD_TAG); None for a shared one."""
        for resource in self.resources.values():
            tags = resource.get("Properties", {}).get("Tags")
            pairs = (
                tags.items()
                if isinstance(tags, dict)
                else [(t.get("Key"), t.get("Value")) for t in tags or []]
            )
            for key, value in pairs:
                if key == WORKLOAD_TAG:
                    return str(value)
        return None


@dataclass
class CloudAssembly:
    """The stacks of one synthesized app, and the resolver of their references."""

    outdir: Path
    stacks: dict[str, Stack]
    account: str = DEFAULT_ACCOUNT
    _physical: dict[tuple[str, str], str] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, outdir: Path | str, *, account: str = DEFAULT_ACCOUNT) -> CloudAssembly:
        outdir = Path(outdir)
        manifest = json.loads((outdir / "manifest.json").read_text())
        stacks: dict[str, Stack] = {}
        for artifact_id, artifact in manifest.get("artifacts", {}).items():
            if artifact.get("type") != "aws:cloudformation:stack":
                continue
            props = artifact.get("properties", {})
            name = props.get("stackName") or artifact_id
            region = str(artifact.get("environment", "aws://unknown-account/us-east-1")).rsplit("/", 1)[-1]
            if region.startswith("unknown"):
                region = "us-east-1"
            template = json.loads((outdir / props["templateFile"]).read_text())
            stacks[name] = Stack(name=name, region=region, template=template)
        if not stacks:
            raise FileNotFoundError(
                f"{outdir} holds no CloudFormation stack (is it a cdk synth output folder?)"
            )
        return cls(outdir=outdir, stacks=stacks, account=account)

    def for_workload(self, name: str) -> CloudAssembly:
        """The shared stacks and workload `name`'s stack, without other workloads' stacks: what one workload's
        run reads (an app may deploy several)."""
        owners = {stack.name: stack.workload() for stack in self.stacks.values()}
        if name not in owners.values():
            found = ", ".join(sorted(filter(None, owners.values()))) or "none"
            raise KeyError(f"no stack of workload {name!r} in {self.outdir}; workloads: {found}")
        kept = {n: stack for n, stack in self.stacks.items() if owners[n] in (None, name)}
        return CloudAssembly(outdir=self.outdir, stacks=kept, account=self.account)

    # ---- lookups --------------------------------------------------------------------------------------
    def stack(self, name: str) -> Stack:
        try:
            return self.stacks[name]
        except KeyError:
            raise KeyError(f"no stack {name!r} in {self.outdir}; stacks: {', '.join(self.stacks)}") from None

    def find(self, resource_type: str) -> list[tuple[Stack, str, Mapping[str, Any]]]:
        """(stack, logical id, resource) of every resource of `resource_type`, in every stack."""
        return [
            (stack, lid, resource)
            for stack in self.stacks.values()
            for lid, resource in stack.of_type(resource_type).items()
        ]

    def only(self, resource_type: str) -> tuple[Stack, str, Mapping[str, Any]]:
        found = self.find(resource_type)
        if len(found) != 1:
            raise UnresolvableReference(f"expected one {resource_type} in the assembly, found {len(found)}")
        return found[0]

    # ---- resolution -----------------------------------------------------------------------------------
    def resolve(self, value: Any, stack: Stack) -> Any:
        """`value` with every intrinsic function resolved in the context of `stack`."""
        if isinstance(value, list):
            return [self.resolve(v, stack) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(stack, arg)
            if key == "Fn::GetAtt":
                logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(stack, logical_id, attribute)
            if key == "Fn::Join":
                separator, parts = arg
                return separator.join(str(self.resolve(p, stack)) for p in parts)
            if key == "Fn::Sub":
                return self._sub(stack, arg)
            if key.startswith("Fn::") or key == "Condition":
                raise UnresolvableReference(f"intrinsic {key} is not supported: {json.dumps(value)[:200]}")
        return {k: self.resolve(v, stack) for k, v in value.items()}

    def ref(self, stack: Stack, name: str) -> str:
        pseudo = {
            "AWS::AccountId": self.account,
            "AWS::Region": stack.region,
            "AWS::Partition": PARTITION,
            "AWS::URLSuffix": URL_SUFFIX,
            "AWS::StackName": stack.name,
            "AWS::NoValue": "",
        }
        if name in pseudo:
            return pseudo[name]
        parameter = stack.template.get("Parameters", {}).get(name)
        if parameter is not None:
            return str(self._parameter(stack, name, parameter))
        resource = self._resource(stack, name)
        rule = _TYPES.get(resource["Type"])
        if rule is None:
            raise UnresolvableReference(f"Ref to {name} of unsupported type {resource['Type']}")
        return rule.ref(self, stack, name, resource)

    def get_att(self, stack: Stack, logical_id: str, attribute: str) -> str:
        resource = self._resource(stack, logical_id)
        rule = _TYPES.get(resource["Type"])
        if rule is None or attribute not in rule.attributes:
            raise UnresolvableReference(
                f"Fn::GetAtt {logical_id}.{attribute} ({resource['Type']}) is not supported"
            )
        return rule.attributes[attribute](self, stack, logical_id, resource)

    def physical_name(self, stack: Stack, logical_id: str, name_property: str | None = None) -> str:
        """The name the template gives the resource, else `<stack>-<logical id>` (what CloudFormation would
        generate, without its random suffix)."""
        key = (stack.name, logical_id)
        if key not in self._physical:
            props = stack.resources[logical_id].get("Properties", {})
            given = props.get(name_property) if name_property else None
            self._physical[key] = (
                str(self.resolve(given, stack)) if given is not None else f"{stack.name}-{logical_id}"[:64]
            )
        return self._physical[key]

    def arn(
        self, stack: Stack, service: str, resource: str, *, region: bool = True, account: bool = True
    ) -> str:
        return f"arn:{PARTITION}:{service}:{stack.region if region else ''}:{self.account if account else ''}:{resource}"

    def _resource(self, stack: Stack, logical_id: str) -> Mapping[str, Any]:
        try:
            resource: Mapping[str, Any] = stack.resources[logical_id]
        except KeyError:
            raise UnresolvableReference(f"{stack.name} has no resource or parameter {logical_id!r}") from None
        return resource

    def _parameter(self, stack: Stack, name: str, parameter: Mapping[str, Any]) -> Any:
        """A parameter read from Parameter Store at deploy: the value that a stack of the assembly stores there."""
        if parameter.get("Type") != "AWS::SSM::Parameter::Value<String>":
            raise UnresolvableReference(
                f"{stack.name} parameter {name} of type {parameter.get('Type')} is not supported"
            )
        for other, _, resource in self.find("AWS::SSM::Parameter"):
            props = resource.get("Properties", {})
            if self.resolve(props.get("Name"), other) == parameter.get("Default"):
                return self.resolve(props["Value"], other)
        raise UnresolvableReference(
            f"no stack stores the parameter {parameter.get('Default')} that {stack.name} reads"
        )

    def _sub(self, stack: Stack, arg: Any) -> str:
        template, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(self.resolve(variables[name], stack))
            if "." in name and not name.startswith("AWS::"):
                logical_id, attribute = name.split(".", 1)
                return self.get_att(stack, logical_id, attribute)
            return self.ref(stack, name)

        return re.sub(r"\$\{([^}]+)\}", replace, template)


# ---- how each resource type resolves -------------------------------------------------------------------
_Resolver = Callable[[CloudAssembly, Stack, str, Mapping[str, Any]], str]


@dataclass(frozen=True)
class _TypeRule:
    ref: _Resolver
    attributes: Mapping[str, _Resolver] = field(default_factory=dict)


def _name(prop: str | None) -> _Resolver:
    return lambda a, s, lid, r: a.physical_name(s, lid, prop)


def _arn(
    service: str, pattern: str, prop: str | None, *, region: bool = True, account: bool = True
) -> _Resolver:
    return lambda a, s, lid, r: a.arn(
        s, service, pattern.format(name=a.physical_name(s, lid, prop)), region=region, account=account
    )


def _fake_id(prefix: str) -> _Resolver:
    """A stable id of the form AWS gives (sg-..., subnet-...), derived from the logical id."""
    return lambda a, s, lid, r: f"{prefix}-{hashlib.sha256(f'{s.name}/{lid}'.encode()).hexdigest()[:17]}"


def _lower(resolver: _Resolver) -> _Resolver:
    return lambda a, s, lid, r: resolver(a, s, lid, r).lower()


_TYPES: dict[str, _TypeRule] = {
    "AWS::Lambda::Function": _TypeRule(
        ref=_name("FunctionName"), attributes={"Arn": _arn("lambda", "function:{name}", "FunctionName")}
    ),
    "AWS::Lambda::LayerVersion": _TypeRule(ref=_arn("lambda", "layer:{name}:1", "LayerName")),
    "AWS::SNS::Topic": _TypeRule(
        ref=_arn("sns", "{name}", "TopicName"),
        attributes={"TopicName": _name("TopicName"), "TopicArn": _arn("sns", "{name}", "TopicName")},
    ),
    "AWS::S3::Bucket": _TypeRule(
        ref=_lower(_name("BucketName")),
        attributes={"Arn": _lower(_arn("s3", "{name}", "BucketName", region=False, account=False))},
    ),
    "AWS::Batch::JobDefinition": _TypeRule(ref=_arn("batch", "job-definition/{name}:1", "JobDefinitionName")),
    "AWS::Batch::JobQueue": _TypeRule(
        ref=_arn("batch", "job-queue/{name}", "JobQueueName"),
        attributes={"JobQueueArn": _arn("batch", "job-queue/{name}", "JobQueueName")},
    ),
    "AWS::Batch::ComputeEnvironment": _TypeRule(
        ref=_arn("batch", "compute-environment/{name}", "ComputeEnvironmentName"),
        attributes={
            "ComputeEnvironmentArn": _arn("batch", "compute-environment/{name}", "ComputeEnvironmentName")
        },
    ),
    "AWS::Glue::Job": _TypeRule(ref=_name("Name")),
    "AWS::Glue::SecurityConfiguration": _TypeRule(ref=_name("Name")),
    "AWS::Glue::Database": _TypeRule(ref=_name(None)),
    "AWS::EMR::SecurityConfiguration": _TypeRule(ref=_name("Name")),
    "AWS::IAM::Role": _TypeRule(
        ref=_name("RoleName"), attributes={"Arn": _arn("iam", "role/{name}", "RoleName", region=False)}
    ),
    "AWS::IAM::InstanceProfile": _TypeRule(
        ref=_name("InstanceProfileName"),
        attributes={"Arn": _arn("iam", "instance-profile/{name}", "InstanceProfileName", region=False)},
    ),
    "AWS::EC2::SecurityGroup": _TypeRule(ref=_fake_id("sg"), attributes={"GroupId": _fake_id("sg")}),
    "AWS::EC2::Subnet": _TypeRule(ref=_fake_id("subnet"), attributes={"SubnetId": _fake_id("subnet")}),
    "AWS::EC2::VPC": _TypeRule(ref=_fake_id("vpc"), attributes={"VpcId": _fake_id("vpc")}),
    "AWS::KMS::Key": _TypeRule(ref=_fake_id("key"), attributes={"Arn": _arn("kms", "key/{name}", None)}),
    "AWS::Logs::LogGroup": _TypeRule(
        ref=_name("LogGroupName"), attributes={"Arn": _arn("logs", "log-group:{name}:*", "LogGroupName")}
    ),
    "AWS::SageMaker::ModelPackageGroup": _TypeRule(
        ref=_lower(_arn("sagemaker", "model-package-group/{name}", "ModelPackageGroupName")),
        attributes={
            "ModelPackageGroupName": _name("ModelPackageGroupName"),
            "ModelPackageGroupArn": _lower(
                _arn("sagemaker", "model-package-group/{name}", "ModelPackageGroupName")
            ),
        },
    ),
    "AWS::StepFunctions::StateMachine": _TypeRule(
        ref=_arn("states", "stateMachine:{name}", "StateMachineName"),
        attributes={"Name": _name("StateMachineName")},
    ),
}
