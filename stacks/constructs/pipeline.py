"""The pipeline: three Lambdas and the Step Functions state machine that joins them to Glue, EMR and Batch.

Plan ─► PrepareData ║ Glue clean ║ (transient) create EMR cluster ║ ─► BuildFeatures (EMR step)
     ─► ExpandCandidates ─► TrainAndPrepareInference ║ Map: Batch training per candidate ║
                                                      ║ EMR inference features ─► (transient) terminate ║
     ─► SelectModel ─► EvaluateModel (Batch: the workload's evaluation) ─► QualityGate
     ─► Publish ║ RegisterModel ║ Batch inference ║ ─► Summarize

(persistent EMR: Plan ─► CleanData ─► DescribePersistentCluster ─► ClusterRunning? ─► BuildFeatures ...)

Every task retries transient service errors with exponential backoff and full jitter, has its own
TimeoutSeconds (for the Glue and Batch .sync tasks an outer bound over the job's own limits: stacks/defaults.py),
and is caught: the failure is published once to the SNS topic (naming the state and the cause), a transient
cluster is terminated, and the execution ends in a Fail state carrying the error and cause. A synth refuses an
execution timeout shorter than a run whose every task takes its whole timeout (stacks/guards.py). State payloads
carry S3 pointers and small fields only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from aws_cdk import ArnFormat, Aws, Duration, FileSystem, RemovalPolicy, Stack
from aws_cdk import aws_batch as batch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from mlpipe.config import MlpipeConfig
from mlpipe.workload import Workload, share_identifier
from stacks import guards
from stacks.constructs.batch import JobQueues
from stacks.constructs.common import (
    S3_READ_WRITE,
    S3_READ_WRITE_DELETE,
    acknowledge,
    acknowledge_resource_wildcard,
    allow,
    allow_key,
    allow_objects,
    drop_redundant_dependency,
    encrypted_log_group,
    lambda_code,
    lambda_layer,
)
from stacks.constructs.emr import EmrSteps, create_cluster_task
from stacks.constructs.glue_etl import GlueEtl
from stacks.constructs.storage import DataLake
from stacks.constructs.workload_code import WorkloadCode
from stacks.constructs.workload_jobs import WorkloadJobs
from stacks.defaults import (
    EMR_STEP_TIMEOUT,
    EMR_TERMINATE_TIMEOUT,
    LAMBDA_ARCHITECTURE,
    LAMBDA_RUNTIME,
    LAMBDA_TASK_TIMEOUT,
    LAMBDA_TIMEOUT,
    LAMBDA_TRACING,
    LAMBDAS_DIR,
    RETRY_INTERVAL,
    RETRY_MAX_DELAY,
    SNS_TASK_TIMEOUT,
    batch_task_bound,
    glue_task_bound,
    longest_bucket_name,
    resource_name,
)

# Transient errors of each integration; anything else is the work's own failure and is not retried.
LAMBDA_TRANSIENT_ERRORS = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
]
GLUE_TRANSIENT_ERRORS = [
    "Glue.ConcurrentRunsExceededException",
    "Glue.ThrottlingException",
    "Glue.InternalServiceException",
    "Glue.OperationTimeoutException",
]
EMR_TRANSIENT_ERRORS = [
    "EMR.AmazonElasticMapReduceException",
    "EMR.InternalServerErrorException",
    "EMR.ThrottlingException",
]
BATCH_TRANSIENT_ERRORS = [
    "Batch.AWSBatchException",
    "Batch.ServerException",
    "Batch.TooManyRequestsException",
]
Task = sfn.TaskStateBase | sfn.CustomState
STAGE_LABELS = {"clean": "Glue clean", "features": "EMR features"}
SNS_TRANSIENT_ERRORS = ["SNS.InternalErrorException", "SNS.ThrottledException", "SNS.KMSThrottlingException"]


# EMR actions on an existing cluster (their resource type is `cluster`), as CDK's EMR tasks grant them.
EMR_CLUSTER_ACTIONS = frozenset(
    f"elasticmapreduce:{a}"
    for a in (
        "DescribeCluster",
        "TerminateJobFlows",
        "AddJobFlowSteps",
        "DescribeStep",
        "CancelSteps",
        "SetTerminationProtection",
        "ModifyInstanceFleet",
    )
)
# Tagging is checked on the cluster's ARN, also when RunJobFlow creates a tagged cluster (tag on create).
EMR_TAGGING = frozenset({"elasticmapreduce:AddTags"})


def narrow_emr_statement(
    statement: iam.PolicyStatement, clusters: str, region_clusters: str
) -> list[iam.PolicyStatement]:
    """`statement` with its EMR cluster actions (EMR_CLUSTER_ACTIONS) on `clusters` (the pipeline's cluster ARN,
    or `region_clusters` for clusters created at run time) and AddTags on `region_clusters`, instead of `*` or
    every cluster of the account and region. Every other action stays where it was (RunJobFlow on `*`: it has no
    resource type). Anything but an unconditional, unnamed Allow of EMR actions on `*` or `cluster/*` is returned
    unchanged."""
    actions = statement.actions  # first: each property read is a jsii call, and most statements end here
    if not actions or not all(a.startswith("elasticmapreduce:") for a in actions):
        return [statement]
    plain = (
        statement.effect == iam.Effect.ALLOW
        and not statement.sid
        and not statement.has_principal
        and not statement.conditions
        and not statement.not_resources
    )
    resources = statement.resources
    if not plain or not (resources == ["*"] or all(r.endswith(":cluster/*") for r in resources)):
        return [statement]
    targets: dict[str, list[str]] = {}  # clusters and region_clusters are one ARN pattern in transient mode
    for arn, moving in ((clusters, EMR_CLUSTER_ACTIONS), (region_clusters, EMR_TAGGING)):
        targets.setdefault(arn, []).extend(a for a in actions if a in moving)
    kept = [a for a in actions if a not in EMR_CLUSTER_ACTIONS | EMR_TAGGING]
    narrowed = [iam.PolicyStatement(actions=kept, resources=resources)] if kept else []
    narrowed += [
        iam.PolicyStatement(actions=moved, resources=[arn]) for arn, moved in targets.items() if moved
    ]
    return narrowed


class StateMachineRole(iam.Role):
    """The state machine's role; it narrows the EMR statements that CDK's EMR tasks give it.

    StateMachine adds every task's statements through add_to_principal_policy, and CDK (aws-cdk-lib 2.275.0)
    writes the EMR ones wider than they need to be: EmrCreateCluster puts DescribeCluster, TerminateJobFlows and
    AddTags on `*` beside RunJobFlow, and EmrAddStep grants its step actions on every cluster of the account and
    region, even where the cluster is known. Here the cluster actions go to `clusters`: this region's `cluster/*`
    for transient clusters (their ids exist only at run time), the stack's cluster's ARN in persistent mode;
    AddTags to this region's `cluster/*` (narrow_emr_statement). Every other statement is added as it comes.
    """

    def __init__(self, scope: Construct, construct_id: str, *, clusters: str, region_clusters: str) -> None:
        self._clusters = clusters
        self._region_clusters = region_clusters
        super().__init__(scope, construct_id, assumed_by=iam.ServicePrincipal("states.amazonaws.com"))

    def add_to_principal_policy(self, statement: iam.PolicyStatement) -> iam.AddToPrincipalPolicyResult:
        results = [
            super(StateMachineRole, self).add_to_principal_policy(s)
            for s in narrow_emr_statement(statement, self._clusters, self._region_clusters)
        ]
        return results[-1]


def _retry(state: Task, errors: list[str], *, attempts: int = 5) -> None:
    state.add_retry(
        errors=errors,
        interval=RETRY_INTERVAL,
        backoff_rate=2.0,
        max_attempts=attempts,
        max_delay=RETRY_MAX_DELAY,
        jitter_strategy=sfn.JitterType.FULL,
    )


def code_revision(
    lambdas_dir: Path, code: WorkloadCode, glue_etl: GlueEtl | None, steps: EmrSteps | None, image_hash: str
) -> str:
    """A digest of every code asset a pipeline deploys: the model registry's CommitId.

    It changes exactly when deployed code does; a git commit would change every template on every commit and
    defeat local mode's reuse of cdk.out.
    """
    lambda_code = FileSystem.fingerprint(str(lambdas_dir), exclude=["**/__pycache__", "**/*.pyc"])
    parts = [f"lambdas={lambda_code}"]
    if glue_etl is not None:
        parts.append(f"glue={glue_etl.script.asset_hash}")
    if steps is not None:
        parts.append(
            f"emr={steps.features_script.asset_hash},{steps.inference_features_script.asset_hash},"
            f"{steps.py_files.asset_hash}"
        )
    parts += [f"image={image_hash}", f"workload={code.sha256}"]
    return "sha256:" + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


class Pipeline(Construct):
    """The preprocessing, training and inference Lambdas, the notification topic and the state machine."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: MlpipeConfig,
        lake: DataLake,
        code: WorkloadCode,
        glue_etl: GlueEtl | None,
        steps: EmrSteps | None,
        queues: JobQueues,
        jobs: WorkloadJobs,
        workload: Workload,
        removal: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self._lake = lake
        self._workload = workload.name
        self._share = share_identifier(workload.name)
        self._model_package_group_name = resource_name(config, workload.name)
        key = lake.key

        self.topic = sns.Topic(
            self,
            "FailureTopic",
            master_key=key,
            enforce_ssl=True,
            display_name=f"mlpipe {config.env} {workload.name}: pipeline failures and alarms",
        )
        # enforce_ssl makes a topic policy, which replaces SNS's default one: without this statement no alarm
        # may publish. Scoped to this account's alarms, as AWS's re:Post answer for such topics does.
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowThisAccountsAlarmsToPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={"ArnLike": {"aws:SourceArn": Stack.of(self).format_arn(
                    service="cloudwatch", resource="alarm", resource_name="*",
                    arn_format=ArnFormat.COLON_RESOURCE_NAME)}},
            )
        )  # fmt: skip
        if config.pipeline.notification_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(config.pipeline.notification_email))

        self.model_package_group = sagemaker.CfnModelPackageGroup(
            self,
            "ModelPackageGroup",
            model_package_group_name=self._model_package_group_name,
            model_package_group_description="Models that passed mlpipe's quality gate",
        )
        self.model_package_group.apply_removal_policy(
            removal
        )  # the registry is stateful: retained by default

        # ---- Lambdas --------------------------------------------------------------------------------
        self.layer = lambda_layer(self, "RuntimeDependencies")
        self._code = lambda_code()
        self._removal = removal
        common_env = {
            "WORKLOAD_NAME": workload.name,
            "METRIC_NAME": workload.metric.name,
            "METRIC_DIRECTION": workload.metric.direction,
            "RAW_BUCKET": lake.raw_bucket.bucket_name,
            "CURATED_BUCKET": lake.curated_bucket.bucket_name,
            "ARTIFACTS_BUCKET": lake.artifacts_bucket.bucket_name,
            "LOG_LEVEL": "INFO",
            "CODE_VERSION": code_revision(LAMBDAS_DIR, code, glue_etl, steps, jobs.image_hash),
        }
        self.preprocessing = self._function(
            "Preprocessing",
            "preprocessing.handler.handler",
            {
                **common_env,
                "STAGES": json.dumps(workload.stages()),
                **(steps.step_script_uris() if steps is not None else {"WORKLOAD_CODE_URI": code.uri}),
                "RAW_PREFIX": workload.raw_prefix,
                "METRIC_GATE": repr(float(workload.metric.gate)),
                "DEFAULT_CANDIDATES": json.dumps(workload.execution_candidates(), separators=(",", ":")),
                "MAX_CANDIDATES": str(config.pipeline.max_candidates),
                # The shapes the Batch job definitions run: a candidate must fit one of them.
                "TRAINING_GPUS": str(config.batch.training_gpus),
                "MULTINODE_NODES": str(config.batch.multinode_nodes),
                "MULTINODE_GPUS_PER_NODE": str(config.batch.multinode_gpus_per_node),
                "POWERTOOLS_SERVICE_NAME": "mlpipe-preprocessing",
            },
        )
        # Each Lambda reaches its workload's runs only, and commits its JSON atomically: write under
        # tmp/runs/<workload>/, copy into runs/<workload>/, delete the temporary.
        runs, tmp_runs = f"runs/{workload.name}/", f"tmp/runs/{workload.name}/"
        allow_objects(self.preprocessing.role, lake.artifacts_bucket, [runs], S3_READ_WRITE)
        allow_objects(self.preprocessing.role, lake.artifacts_bucket, [tmp_runs], S3_READ_WRITE_DELETE)

        self.training = self._function(
            "Training",
            "training.handler.handler",
            {
                **common_env,
                "MODEL_PACKAGE_GROUP": self.model_package_group.model_package_group_name,
                "POWERTOOLS_SERVICE_NAME": "mlpipe-training",
            },
        )
        allow_objects(self.training.role, lake.artifacts_bucket, [runs], S3_READ_WRITE)
        allow_objects(self.training.role, lake.artifacts_bucket, [tmp_runs], S3_READ_WRITE_DELETE)
        allow(
            self.training.role,
            ["sagemaker:ListModelPackages"],
            ["*"],
            sid="FindRegisteredModelPackage",
            reason="ListModelPackages has no resource-level permissions; it only reads package summaries.",
        )
        allow(
            self.training.role,
            ["sagemaker:CreateModelPackage", "sagemaker:DescribeModelPackage"],
            [self.model_package_group.attr_model_package_group_arn, self._model_package_arn(config.env)],
            sid="RegisterModelPackages",
            reason="Model packages are created at run time as versions of the mlpipe group; nothing else.",
        )

        self.inference = self._function(
            "Inference",
            "inference.handler.handler",
            {
                **common_env,
                "METRIC_GATE": repr(float(workload.metric.gate)),
                "POWERTOOLS_SERVICE_NAME": "mlpipe-inference",
            },
        )
        allow_objects(self.inference.role, lake.artifacts_bucket, [runs], S3_READ_WRITE)
        allow_objects(self.inference.role, lake.artifacts_bucket, [tmp_runs], S3_READ_WRITE_DELETE)

        # ---- State machine ----------------------------------------------------------------------------
        self.log_group = encrypted_log_group(
            self, "StateMachineLogs", key=key, retention_days=config.log_retention_days, removal=removal
        )
        # The EMR clusters the state machine works on: this region's (transient clusters, created at run time),
        # or the stack's one.
        self._region_clusters = Stack.of(self).format_arn(
            service="elasticmapreduce", resource="cluster", resource_name="*"
        )
        self._clusters = self._region_clusters
        if steps is not None and steps.cluster_id is not None:
            self._clusters = Stack.of(self).format_arn(
                service="elasticmapreduce", resource="cluster", resource_name=steps.cluster_id
            )
        self._transient = steps is not None and config.emr.mode == "transient"
        self._glue_job_name: str | None = None
        definition = self._definition(glue_etl, steps, queues, jobs)
        stages = " and ".join(STAGE_LABELS[stage] for stage in workload.stages()) or "no Spark stage"
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            role=StateMachineRole(
                self, "StateMachineRole", clusters=self._clusters, region_clusters=self._region_clusters
            ),
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            state_machine_type=sfn.StateMachineType.STANDARD,
            timeout=Duration.hours(config.pipeline.execution_timeout_hours),
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
            comment=f"mlpipe {config.env} {workload.name}: {stages}, Batch GPU training and inference",
        )
        allow_key(self.state_machine.role, key, ["kms:Decrypt", "kms:GenerateDataKey"])
        self._allow_batch_jobs()
        if (
            steps is not None and steps.execution_role is not None
        ):  # AddJobFlowSteps with an ExecutionRoleArn passes that role
            allow(self.state_machine.role, ["iam:PassRole"], [steps.execution_role.role_arn])
        drop_redundant_dependency(self.state_machine, self.state_machine.role)
        # Stopping an execution (or a failed branch) terminates the Batch jobs it started; .sync polls them.
        allow(
            self.state_machine.role,
            ["batch:DescribeJobs"],
            ["*"],
            reason="DescribeJobs has no resource-level permissions (the .sync integration polls with it).",
        )
        allow(
            self.state_machine.role,
            ["batch:TerminateJob"],
            [Stack.of(self).format_arn(service="batch", resource="job", resource_name="*")],
            reason="Jobs are created at run time; TerminateJob stops the ones a stopped execution started.",
        )
        if (
            self._glue_job_name is not None
        ):  # what StartJobRun .sync needs (Step Functions' Glue IAM policies)
            allow(
                self.state_machine.role,
                ["glue:StartJobRun", "glue:GetJobRun", "glue:GetJobRuns", "glue:BatchStopJobRun"],
                [
                    Stack.of(self).format_arn(
                        service="glue", resource="job", resource_name=self._glue_job_name
                    )
                ],
            )
        self._acknowledge_state_machine_role()
        self._check_limits(jobs)

    def _allow_batch_jobs(self) -> None:
        """What the Batch tasks need: submit this workload's job definitions to the queues under its own share
        only, and the rule through which Step Functions follows the jobs (.sync)."""
        stack = Stack.of(self)
        queues = {q.job_queue_arn: None for q, _ in self._submitted}
        definitions = {d.job_definition_arn: None for _, d in self._submitted}
        allow(
            self.state_machine.role,
            ["batch:SubmitJob"],
            [*queues, *definitions],
            sid="SubmitWorkloadJobs",
            conditions={"StringEquals": {"batch:ShareIdentifier": self._share}},
        )
        allow(
            self.state_machine.role,
            ["events:PutTargets", "events:PutRule", "events:DescribeRule"],
            [stack.format_arn(service="events", resource="rule",
                              resource_name="StepFunctionsGetEventsForBatchJobsRule")],
        )  # fmt: skip

    def _check_limits(self, jobs: WorkloadJobs) -> None:
        """Synth-time guards (stacks/guards.py): fail now rather than at the 46th candidate of a run."""
        config = self._config
        bounds = guards.training_parameter_bounds(longest_bucket_name(config))
        for kind, command in jobs.commands.items():
            guards.check_batch_command(kind, command, bounds)
        guards.check_candidates_payload(config, longest_bucket_name(config))
        # The definition as CloudFormation will receive it; references stand in as a placeholder.
        cfn = self.state_machine.node.default_child
        assert isinstance(cfn, sfn.CfnStateMachine)
        resolved = Stack.of(self).resolve(cfn.definition_string)
        parts = resolved["Fn::Join"][1] if isinstance(resolved, dict) else [resolved]
        graph = json.loads("".join(p if isinstance(p, str) else "REF" for p in parts))
        guards.check_history(config, graph)
        guards.check_task_timeouts(config, graph)

    # ------------------------------------------------------------------------------------------------
    def _model_package_arn(self, env: str) -> str:
        return Stack.of(self).format_arn(
            service="sagemaker", resource="model-package", resource_name=f"{self._model_package_group_name}/*"
        )

    def _function(self, name: str, handler: str, environment: dict[str, str]) -> lambda_.Function:
        # A value still unresolved here (a bucket name, an asset URI) is counted at 256 bytes, more than any is.
        guards.check_lambda_environment(
            name,
            # "${Token[" marks an unresolved string: what Token.is_unresolved tests, without a kernel call
            {k: ("x" * 256 if "${Token[" in v else v) for k, v in environment.items()},
        )
        log_group = encrypted_log_group(
            self,
            f"{name}Logs",
            key=self._lake.key,
            retention_days=self._config.log_retention_days,
            removal=self._removal,
        )
        role = iam.Role(
            self,
            f"{name}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"mlpipe {name.lower()} Lambda",
        )
        allow(
            role,
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            [f"{log_group.log_group_arn}"],
            reason="Log streams are created at run time inside this function's own log group.",
        )
        function = lambda_.Function(
            self,
            name,
            runtime=LAMBDA_RUNTIME,
            architecture=LAMBDA_ARCHITECTURE,
            handler=handler,
            code=self._code,
            layers=[self.layer],
            role=role,
            log_group=log_group,
            tracing=LAMBDA_TRACING,
            timeout=LAMBDA_TIMEOUT,
            memory_size=self._config.pipeline.lambda_memory_mib,
            environment=environment,
            environment_encryption=self._lake.key,
            reserved_concurrent_executions=self._config.pipeline.lambda_reserved_concurrency,
            description=f"mlpipe {name.lower()} step",
        )
        allow_key(role, self._lake.key)
        drop_redundant_dependency(function, role)
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray PutTraceSegments/PutTelemetryRecords have no resource-level permissions.",
        )
        return function

    def _acknowledge_state_machine_role(self) -> None:
        """The statements that CDK's service integrations add to the state machine's role."""
        role = self.state_machine.role
        stack = Stack.of(self)
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "Log delivery (logs:CreateLogDelivery and friends), X-Ray, and EMR RunJobFlow (the cluster "
            "does not exist yet) have no resource-level permissions.",
        )
        for function in (self.preprocessing, self.training, self.inference):
            acknowledge_resource_wildcard(
                role,
                f"{function.function_arn}:*",
                "Invoking the function's versions and aliases (CDK's LambdaInvoke grant).",
            )
        if self._transient:
            acknowledge_resource_wildcard(
                role,
                self._region_clusters,
                "Describing, stepping, tagging and terminating the run's transient cluster, whose id exists only "
                "at run time (StateMachineRole keeps every EMR action but RunJobFlow to this region's clusters).",
            )
            acknowledge_resource_wildcard(
                role,
                f"arn:{Aws.PARTITION}:iam::{stack.account}:role/aws-service-role/"
                "elasticmapreduce.amazonaws.com*/AWSServiceRoleForEMRCleanup*",
                "EMR's cleanup service-linked role, created once per account on first cluster (CDK's EmrCreateCluster).",
            )

    # ------------------------------------------------------------------------------------------------
    def _definition(
        self, glue_etl: GlueEtl | None, steps: EmrSteps | None, queues: JobQueues, jobs: WorkloadJobs
    ) -> sfn.IChainable:
        config = self._config
        transient = steps is not None and config.emr.mode == "transient"  # a cluster per run to create

        fail = sfn.Fail(self, "PipelineFailed", error_path="$.failure.error", cause_path="$.failure.cause")
        notify = tasks.SnsPublish(
            self,
            "NotifyFailure",
            topic=self.topic,
            subject=f"mlpipe {config.env}: pipeline execution failed",
            message=sfn.TaskInput.from_object(
                {
                    "execution": sfn.JsonPath.execution_id,
                    "state": sfn.JsonPath.string_at("$.failure.state"),
                    "error": sfn.JsonPath.string_at("$.failure.error"),
                    "cause": sfn.JsonPath.string_at("$.failure.cause"),
                }
            ),
            result_path=sfn.JsonPath.DISCARD,
            task_timeout=sfn.Timeout.duration(SNS_TASK_TIMEOUT),
        )
        _retry(notify, SNS_TRANSIENT_ERRORS)

        def terminate_cluster(name: str) -> tasks.EmrTerminateCluster:
            """Terminate the run's transient cluster (and wait until it is gone)."""
            task = tasks.EmrTerminateCluster(
                self,
                name,
                cluster_id=sfn.JsonPath.string_at("$.cluster.ClusterId"),
                integration_pattern=sfn.IntegrationPattern.RUN_JOB,
                result_path=sfn.JsonPath.DISCARD,
                task_timeout=sfn.Timeout.duration(EMR_TERMINATE_TIMEOUT),
            )
            _retry(task, EMR_TRANSIENT_ERRORS)
            return task

        if transient:
            cleanup = terminate_cluster("TerminateClusterAfterFailure")
            cleanup.add_catch(fail, result_path="$.cleanup_error")
            cluster_to_terminate = (
                sfn.Choice(self, "ClusterToTerminate?")
                .when(sfn.Condition.is_present("$.cluster.ClusterId"), cleanup.next(fail))
                .otherwise(fail)
            )
            # Even when the notification cannot be sent, the cluster is terminated.
            notify.add_catch(cluster_to_terminate, result_path="$.notify_error")
            notify.next(cluster_to_terminate)
        else:
            notify.add_catch(fail, result_path="$.notify_error")
            notify.next(fail)

        def top_level(state: sfn.TaskStateBase | sfn.CustomState | sfn.Parallel | sfn.Map, name: str):
            """Catch every error of a top-level state: record it, notify once, clean up, fail."""
            handler = sfn.Pass(
                self,
                f"{name} failed",
                parameters={
                    "state": name,
                    "error.$": "$.error.Error",
                    "cause.$": "$.error.Cause",
                },
                result_path="$.failure",
            )
            handler.next(notify)
            state.add_catch(handler, errors=["States.ALL"], result_path="$.error")
            return state

        def in_branch(state: Task, name: str) -> Task:
            """Inside a Parallel or Map: fail the branch with a cause that names this state."""
            handler = sfn.Pass(
                self,
                f"{name} failed",
                parameters={
                    "error.$": "$.error.Error",
                    "cause.$": f"States.Format('{name} failed: {{}}', $.error.Cause)",
                },
                result_path="$.failure",
            )
            handler.next(
                sfn.Fail(
                    self, f"{name} branch failed", error_path="$.failure.error", cause_path="$.failure.cause"
                )
            )
            state.add_catch(handler, errors=["States.ALL"], result_path="$.error")
            return state

        def invoke(
            name: str, function: lambda_.IFunction, payload: dict[str, object] | None, result_path: str
        ):
            task = tasks.LambdaInvoke(
                self,
                name,
                lambda_function=function,
                # No payload: the function receives the state's input as it is (for Plan, the execution input).
                payload=sfn.TaskInput.from_object(payload) if payload else None,
                payload_response_only=True,
                retry_on_service_exceptions=False,
                result_path=result_path,
                task_timeout=sfn.Timeout.duration(LAMBDA_TASK_TIMEOUT),
            )
            _retry(task, LAMBDA_TRANSIENT_ERRORS, attempts=6)
            return task

        def emr_step(name: str, args_path: str) -> tasks.EmrAddStep:
            step = tasks.EmrAddStep(
                self,
                name,
                cluster_id=sfn.JsonPath.string_at("$.cluster.ClusterId"),
                name=name,
                jar="command-runner.jar",
                args=sfn.JsonPath.list_at(args_path),
                action_on_failure=tasks.ActionOnFailure.CONTINUE,
                # On the shared (persistent) cluster each step runs as its workload's runtime role.
                execution_role_arn=steps.execution_role.role_arn if steps.execution_role else None,
                integration_pattern=sfn.IntegrationPattern.RUN_JOB,
                result_path=sfn.JsonPath.DISCARD,
                task_timeout=sfn.Timeout.duration(EMR_STEP_TIMEOUT),
            )
            _retry(step, EMR_TRANSIENT_ERRORS)
            return step

        batch_cfg = config.batch
        batch_timeout = Duration.minutes(batch_cfg.job_timeout_minutes)

        def submit(
            name: str,
            *,
            job_name: str,
            queue: batch.IJobQueue,
            definition: batch.IJobDefinition,
            parameters: str | dict[str, str],
        ) -> sfn.CustomState:
            """SubmitJob (.sync) with the workload's fair-share identifier, which CDK's BatchSubmitJob cannot
            pass and the fair-share queues require. `job_name` and a `parameters` string are JSONPaths."""
            state = {
                "Type": "Task",
                "Resource": f"arn:{Aws.PARTITION}:states:::batch:submitJob.sync",
                "Parameters": {
                    "JobName.$": job_name,
                    "JobQueue": queue.job_queue_arn,
                    "JobDefinition": definition.job_definition_arn,
                    "ShareIdentifier": self._share,
                    ("Parameters.$" if isinstance(parameters, str) else "Parameters"): parameters,
                    # Each attempt's limit, stated again per job.
                    "Timeout": {"AttemptDurationSeconds": int(batch_timeout.to_seconds())},
                },
                # The job's limit counts neither RUNNABLE time nor Spot retries: the state's bound does.
                "TimeoutSeconds": int(batch_task_bound(config).to_seconds()),
                "ResultSelector": {"JobId.$": "$.JobId", "Status.$": "$.Status"},
                "ResultPath": "$.job",
                # No per-job tags: they would need batch:TagResource; the job definitions propagate theirs.
            }
            job = sfn.CustomState(self, name, state_json=state)
            _retry(job, BATCH_TRANSIENT_ERRORS)
            submitted.append((queue, definition))
            return job

        submitted: list[tuple[batch.IJobQueue, batch.IJobDefinition]] = []

        # 1. Plan the run.
        plan = top_level(invoke("Plan", self.preprocessing, None, "$.plan"), "Plan")

        # 2. Clean with Glue while (transient) the EMR cluster starts; either may be absent. `prepare` runs
        # first, then `proceed(rest)` decides whether the rest runs.
        prepare: sfn.IChainable | None = None
        proceed: Callable[[sfn.IChainable], sfn.IChainable] = lambda rest: rest  # noqa: E731
        clean: sfn.CustomState | None = None
        if glue_etl is not None:
            # StartJobRun (.sync) as CDK's GlueStartJobRun writes it, plus the state's own outer bound, which
            # that class leaves out: Timeout is the run's, and a run may first wait for resources.
            clean = sfn.CustomState(
                self,
                "CleanData",
                state_json={
                    "Type": "Task",
                    "Resource": f"arn:{Aws.PARTITION}:states:::glue:startJobRun.sync",
                    "Parameters": {
                        "JobName": glue_etl.job_name,
                        "Arguments.$": "$.plan.glue_arguments",
                        "Timeout": config.glue.timeout_minutes,
                    },
                    "TimeoutSeconds": int(glue_task_bound(config).to_seconds()),
                    # The run's id and state only (a JSON null would be dropped from a custom state).
                    "ResultSelector": {"JobRunId.$": "$.Id", "JobRunState.$": "$.JobRunState"},
                    "ResultPath": "$.clean",
                },
            )
            _retry(clean, GLUE_TRANSIENT_ERRORS)
            self._glue_job_name = glue_etl.job_name
        if transient:
            assert steps is not None and steps.cluster_spec is not None
            create = create_cluster_task(self, "CreateCluster", steps.cluster_spec)
            create.add_retry(
                errors=EMR_TRANSIENT_ERRORS,
                interval=Duration.seconds(30),
                backoff_rate=2.0,
                max_attempts=3,
                max_delay=Duration.minutes(5),
                jitter_strategy=sfn.JitterType.FULL,
            )
        if transient:
            assert clean is not None  # as below: no feature stage without a clean stage
            # Glue's failure is caught inside its branch, so the Parallel still returns the cluster it
            # started and the failure path can terminate it (a failed branch would drop the cluster id).
            clean.add_catch(
                sfn.Pass(
                    self,
                    "CleanData failed",
                    parameters={
                        "failed": True,
                        "error.$": "$.error.Error",
                        "cause.$": "States.Format('CleanData failed: {}', $.error.Cause)",
                    },
                ),
                errors=["States.ALL"],
                result_path="$.error",
            )
            cleaned = clean.next(sfn.Pass(self, "CleanData succeeded", parameters={"failed": False}))
            prepare = top_level(
                sfn.Parallel(
                    self,
                    "PrepareData",
                    result_selector={"ClusterId.$": "$[1].cluster.ClusterId", "Clean.$": "$[0]"},
                    result_path="$.cluster",
                )
                .branch(cleaned)
                .branch(in_branch(create, "CreateCluster")),
                "PrepareData",
            )
            clean_failure = sfn.Pass(
                self,
                "Cleaning failed",
                parameters={
                    "state": "CleanData",
                    "error.$": "$.cluster.Clean.error",
                    "cause.$": "$.cluster.Clean.cause",
                },
                result_path="$.failure",
            ).next(notify)
            check_cleaning = sfn.Choice(self, "DataCleaned?").when(
                sfn.Condition.boolean_equals("$.cluster.Clean.failed", True), clean_failure
            )
            proceed = check_cleaning.otherwise
        elif steps is not None:
            assert steps.cluster_id is not None
            cluster_id = steps.cluster_id
            # The stack's cluster ends itself after idle_timeout_minutes: say so plainly rather than fail in a step.
            describe = tasks.CallAwsService(
                self,
                "DescribePersistentCluster",
                service="emr",
                action="describeCluster",
                parameters={"ClusterId": cluster_id},
                iam_action="elasticmapreduce:DescribeCluster",
                iam_resources=[self._clusters],
                result_selector={"ClusterId.$": "$.Cluster.Id", "State.$": "$.Cluster.Status.State"},
                result_path="$.cluster",
                task_timeout=sfn.Timeout.duration(LAMBDA_TASK_TIMEOUT),
            )
            _retry(describe, EMR_TRANSIENT_ERRORS)
            unavailable = sfn.Pass(
                self,
                "Cluster unavailable failed",
                parameters={
                    "state": "DescribePersistentCluster",
                    "error": "ClusterNotRunning",
                    "cause.$": "States.Format('The persistent EMR cluster {} is {}: it ended after its idle "
                    "timeout or failed. Raise emr.cluster_generation and deploy the Emr stack to replace it.', "
                    "$.cluster.ClusterId, $.cluster.State)",
                },
                result_path="$.failure",
            ).next(notify)
            usable = [sfn.Condition.string_equals("$.cluster.State", s)
                      for s in ("STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING")]  # fmt: skip
            check_cluster = sfn.Choice(self, "ClusterRunning?").when(sfn.Condition.not_(sfn.Condition.or_(*usable)),
                                                                     unavailable)  # fmt: skip
            assert (
                clean is not None
            )  # a feature stage reads the curated data (mlpipe.workload refuses it alone)
            prepare = top_level(clean, "CleanData").next(top_level(describe, "DescribePersistentCluster"))
            proceed = check_cluster.otherwise
        elif clean is not None:
            prepare = top_level(clean, "CleanData")

        # 3. Features on EMR.
        features = (
            top_level(emr_step("BuildFeatures", "$.plan.emr_features_args"), "BuildFeatures")
            if steps is not None
            else None
        )

        # 4. Train every candidate on Batch while EMR builds the inference features.
        expand = top_level(
            invoke(
                "ExpandCandidates",
                self.training,
                {"action": "expand", "plan_uri.$": "$.plan.plan_uri"},
                "$.training",
            ),
            "ExpandCandidates",
        )

        def train(name: str, queue: batch.IJobQueue, definition: batch.IJobDefinition) -> Task:
            """One candidate's Batch job; the job definition fixes its node and GPU counts."""
            return in_branch(
                submit(
                    name,
                    job_name="States.Format('{}-{}', $.run_id, $.candidate.name)",
                    queue=queue,
                    definition=definition,
                    parameters="$.candidate.parameters",
                ),
                name,
            )

        single = train("TrainSingleNode", queues.spot_first, jobs.training_job_definition)
        multi = train("TrainMultiNode", queues.on_demand, jobs.multinode_job_definition)
        train_map = sfn.Map(
            self,
            "TrainCandidates",
            items_path="$.training.candidates",
            item_selector={"candidate.$": "$$.Map.Item.Value", "run_id.$": "$.plan.run_id"},
            max_concurrency=config.pipeline.map_max_concurrency,
            result_path=sfn.JsonPath.DISCARD,
        ).item_processor(
            sfn.Choice(self, "MultiNode?")
            .when(sfn.Condition.boolean_equals("$.candidate.multi_node", True), multi)
            .otherwise(single)
        )
        if steps is None:  # nothing to prepare for inference: the jobs read the data themselves
            train_and_prepare: sfn.IChainable = top_level(train_map, "TrainCandidates")
        else:
            inference_features: sfn.IChainable = in_branch(
                emr_step("BuildInferenceFeatures", "$.plan.emr_inference_args"), "BuildInferenceFeatures"
            )
            if transient:
                terminate = terminate_cluster("TerminateCluster")
                inference_features = inference_features.next(in_branch(terminate, "TerminateCluster"))
            train_and_prepare = top_level(
                sfn.Parallel(self, "TrainAndPrepareInference", result_path=sfn.JsonPath.DISCARD)
                .branch(train_map)
                .branch(inference_features),
                "TrainAndPrepareInference",
            )

        # 5. Choose, gate, publish.
        select = top_level(
            invoke(
                "SelectModel",
                self.training,
                {
                    "action": "select",
                    "plan_uri.$": "$.plan.plan_uri",
                    "candidates.$": "$.training.candidates[*].name",
                },
                "$.model",
            ),
            "SelectModel",
        )
        # The workload's own code scores the held-out test split; the Lambda only compares its figure.
        evaluate = top_level(
            submit(
                "EvaluateModel",
                job_name="States.Format('{}-evaluation', $.plan.run_id)",
                queue=queues.spot_first,
                definition=jobs.evaluation_job_definition,
                parameters={
                    "input.$": "$.plan.manifest_uri",
                    "model.$": "$.model.model_uri",
                    "output.$": "$.plan.evaluation_output_uri",
                },
            ),
            "EvaluateModel",
        )
        gate = top_level(
            invoke(
                "QualityGate",
                self.inference,
                {
                    "action": "gate",
                    "plan_uri.$": "$.plan.plan_uri",
                    "model_manifest_uri.$": "$.model.model_manifest_uri",
                },
                "$.evaluation",
            ),
            "QualityGate",
        )
        predictions = sfn.Pass(
            self,
            "PlanPredictions",
            parameters={
                "uri.$": f"States.Format('s3://{self._lake.artifacts_bucket.bucket_name}/runs/{self._workload}/{{}}/"
                "predictions/', $.plan.run_id)",
            },
            result_path="$.predictions",
        )
        register = in_branch(
            invoke(
                "RegisterModel",
                self.training,
                {
                    "action": "register",
                    "plan_uri.$": "$.plan.plan_uri",
                    "model_manifest_uri.$": "$.model.model_manifest_uri",
                    "evaluation_uri.$": "$.evaluation.evaluation_uri",
                },
                "$.registered",
            ),
            "RegisterModel",
        )
        score = in_branch(
            submit(
                "BatchInference",
                job_name="States.Format('{}-inference', $.plan.run_id)",
                queue=queues.spot_first,
                definition=jobs.inference_job_definition,
                parameters={
                    "input.$": "$.plan.inference_manifest_uri",
                    "model.$": "$.model.model_uri",
                    "output.$": "$.predictions.uri",
                },
            ),
            "BatchInference",
        )
        publish = top_level(
            sfn.Parallel(
                self,
                "Publish",
                result_selector={"model_package_arn.$": "$[0].registered.model_package_arn"},
                result_path="$.published",
            )
            .branch(register)
            .branch(score),
            "Publish",
        )
        summarize = sfn.Pass(
            self,
            "Summarize",
            parameters={
                "run_id.$": "$.plan.run_id",
                "model_uri.$": "$.model.model_uri",
                "model_manifest_uri.$": "$.model.model_manifest_uri",
                "best_candidate.$": "$.model.best_candidate",
                "evaluation_uri.$": "$.evaluation.evaluation_uri",
                "metric.$": "$.evaluation.metric",
                "test_value.$": "$.evaluation.value",
                "predictions_uri.$": "$.predictions.uri",
                "model_package_arn.$": "$.published.model_package_arn",
            },
        )

        rest = (
            (sfn.Chain.start(features).next(expand) if features is not None else sfn.Chain.start(expand))
            .next(train_and_prepare)
            .next(select)
            .next(evaluate)
            .next(gate)
            .next(predictions)
            .next(publish)
            .next(summarize)
        )
        self._submitted = submitted
        start = sfn.Chain.start(plan)
        return start.next(proceed(rest)) if prepare is None else start.next(prepare).next(proceed(rest))
