"""Monitoring: one dashboard with a section per workload, and alarms on failed or timed-out executions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from mlpipe.config import MlpipeConfig
from stacks.constructs.handoff import publish, receive
from stacks.defaults import CERTIFICATES_ALARM_DAYS

_PERIOD = Duration.minutes(5)
# Step Functions reports each service integration's outcomes under its resource ARN.
_INTEGRATIONS = {
    "Glue": "glue:startJobRun.sync",
    "EMR steps": "elasticmapreduce:addStep.sync",
    "EMR clusters": "elasticmapreduce:createCluster.sync",
    "Batch jobs": "batch:submitJob.sync",
}


@dataclass(frozen=True)
class WorkloadSection:
    """What the dashboard shows of one workload, and where its alarms go."""

    name: str
    state_machine: sfn.IStateMachine
    functions: Sequence[lambda_.IFunction]
    glue_job_name: str | None
    """None: the workload has no clean stage."""
    topic: sns.ITopic


FUNCTIONS = ("preprocessing", "training", "inference")  # the Lambdas of every workload, by role
# CloudFormation's quota: "Maximum number of parameters that you can declare in your CloudFormation template."
MAX_TEMPLATE_PARAMETERS = 200


def parameters_read(clean_stages: Sequence[bool]) -> int:
    """How many handoff parameters the Monitoring stack reads for workloads with (True) or without a clean
    stage: a state machine, a topic, the Lambdas, and the Glue job when there is one."""
    return sum(2 + len(FUNCTIONS) + int(clean) for clean in clean_stages)


def publish_section(scope: Construct, config: MlpipeConfig, section: WorkloadSection) -> None:
    """Hand what the Monitoring stack shows of a workload over from the workload's stack."""
    base = f"workloads/{section.name}"
    publish(scope, config, f"{base}/state-machine-arn", section.state_machine.state_machine_arn,
            f"{section.name}'s state machine")  # fmt: skip
    publish(scope, config, f"{base}/failure-topic-arn", section.topic.topic_arn, f"{section.name}'s topic")
    for role, function in zip(FUNCTIONS, section.functions, strict=True):
        publish(scope, config, f"{base}/{role}-function", function.function_name,
                f"{section.name}'s {role} Lambda")  # fmt: skip
    if section.glue_job_name is not None:
        publish(scope, config, f"{base}/clean-job", section.glue_job_name, f"{section.name}'s Glue job")


def import_section(
    scope: Construct, config: MlpipeConfig, name: str, *, has_clean_stage: bool
) -> WorkloadSection:
    """The section that `publish_section` handed over, in `scope`'s stack."""
    base = f"workloads/{name}"
    imports = Construct(scope, f"Workload-{name}")
    return WorkloadSection(
        name=name,
        state_machine=sfn.StateMachine.from_state_machine_arn(
            imports, "StateMachine", receive(scope, config, f"{base}/state-machine-arn")
        ),
        functions=[
            lambda_.Function.from_function_name(
                imports, role.title(), receive(scope, config, f"{base}/{role}-function")
            )
            for role in FUNCTIONS
        ],
        glue_job_name=receive(scope, config, f"{base}/clean-job") if has_clean_stage else None,
        topic=sns.Topic.from_topic_arn(imports, "Topic", receive(scope, config, f"{base}/failure-topic-arn")),
    )


class Monitoring(Construct):
    """One CloudWatch dashboard: the service integrations of the account, then a section per workload
    (executions, alarms, its Glue job and Lambdas); each workload's alarms go to its own topic."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        dashboard_name: str,
        workloads: Sequence[WorkloadSection],
        certificates: cw.Metric | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        partition = Stack.of(self).partition

        def integration(label: str, metric_name: str, resource: str) -> cw.Metric:
            return cw.Metric(
                namespace="AWS/States",
                metric_name=metric_name,
                statistic="Sum",
                period=_PERIOD,
                label=label,
                dimensions_map={"ServiceIntegrationResourceArn": f"arn:{partition}:states:::{resource}"},
            )

        self.dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=dashboard_name)
        self.dashboard.add_widgets(
            *(
                cw.GraphWidget(
                    title=f"{label} (all state machines of the account)",
                    width=6,
                    left=[
                        integration("scheduled", "ServiceIntegrationsScheduled", resource),
                        integration("succeeded", "ServiceIntegrationsSucceeded", resource),
                        integration("failed", "ServiceIntegrationsFailed", resource),
                        integration("timed out", "ServiceIntegrationsTimedOut", resource),
                    ],
                )
                for label, resource in _INTEGRATIONS.items()
            )
        )
        self.alarms: dict[str, list[cw.Alarm]] = {}
        for section in workloads:
            self.alarms[section.name] = self._section(section)
        if certificates is not None:
            self.certificates_alarm = self._certificates(certificates, workloads)

    def _certificates(self, days_left: cw.Metric, workloads: Sequence[WorkloadSection]) -> cw.Alarm:
        """EMR's TLS certificates end within CERTIFICATES_ALARM_DAYS (renewal failed), or nothing reported for
        a day (the renewal itself stopped): every workload's EMR steps depend on them, so every topic hears."""
        alarm = cw.Alarm(
            self,
            "EmrCertificatesExpiring",
            metric=days_left,
            threshold=CERTIFICATES_ALARM_DAYS,
            evaluation_periods=1,
            comparison_operator=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.BREACHING,
            alarm_description=f"EMR's TLS certificates end within {CERTIFICATES_ALARM_DAYS} days, or their daily "
            "renewal check stopped reporting: clusters fail at bootstrap once they end",
        )
        for w in workloads:
            alarm.add_alarm_action(cw_actions.SnsAction(w.topic))
        self.dashboard.add_widgets(
            cw.GraphWidget(title="EMR TLS certificates: days left", width=8, left=[days_left])
        )
        return alarm

    def _section(self, w: WorkloadSection) -> list[cw.Alarm]:
        scope = Construct(self, w.name)  # a workload's alarms keep their ids whatever other workloads exist
        machine = w.state_machine

        def alarm(construct_id: str, metric: cw.Metric, what: str) -> cw.Alarm:
            created = cw.Alarm(
                scope,
                construct_id,
                metric=metric,
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                alarm_description=f"An mlpipe {w.name} pipeline execution {what}",
            )
            created.add_alarm_action(cw_actions.SnsAction(w.topic))
            return created

        alarms = [
            alarm("ExecutionsFailed", machine.metric_failed(period=_PERIOD, statistic="Sum"), "failed"),
            alarm(
                "ExecutionsTimedOut", machine.metric_timed_out(period=_PERIOD, statistic="Sum"), "timed out"
            ),
        ]
        self.dashboard.add_widgets(cw.TextWidget(markdown=f"## Workload {w.name}", width=24, height=1))
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title=f"{w.name}: executions",
                width=8,
                left=[
                    machine.metric_started(period=_PERIOD, statistic="Sum"),
                    machine.metric_succeeded(period=_PERIOD, statistic="Sum"),
                    machine.metric_failed(period=_PERIOD, statistic="Sum"),
                    machine.metric_timed_out(period=_PERIOD, statistic="Sum"),
                ],
            ),
            cw.GraphWidget(
                title=f"{w.name}: execution time",
                width=8,
                left=[machine.metric_time(period=_PERIOD, statistic="p90")],
            ),
            cw.AlarmStatusWidget(title=f"{w.name}: alarms", width=8, alarms=alarms),
        )
        lambdas = cw.GraphWidget(
            title=f"{w.name}: Lambda errors and throttles",
            width=12,
            left=[
                m
                for f in w.functions
                for m in (f.metric_errors(period=_PERIOD), f.metric_throttles(period=_PERIOD))
            ],
        )
        if w.glue_job_name is None:
            self.dashboard.add_widgets(lambdas)
            return alarms
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title=f"{w.name}: Glue clean job",
                width=12,
                left=[
                    cw.Metric(
                        namespace="Glue",
                        metric_name=name,
                        statistic="Sum",
                        period=_PERIOD,
                        label=label,
                        dimensions_map={"JobName": w.glue_job_name, "JobRunId": "ALL", "Type": "count"},
                    )
                    for name, label in (
                        ("glue.driver.aggregate.numCompletedTasks", "tasks completed"),
                        ("glue.driver.aggregate.numFailedTasks", "tasks failed"),
                    )
                ],
            ),
            lambdas,
        )
        return alarms
