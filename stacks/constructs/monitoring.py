"""Monitoring: one dashboard for the pipeline, and alarms on failed or timed-out executions."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

_PERIOD = Duration.minutes(5)
# Step Functions reports each service integration's outcomes under its resource ARN.
_INTEGRATIONS = {
    "Glue": "glue:startJobRun.sync",
    "EMR steps": "elasticmapreduce:addStep.sync",
    "EMR clusters": "elasticmapreduce:createCluster.sync",
    "Batch jobs": "batch:submitJob.sync",
}


class Monitoring(Construct):
    """A CloudWatch dashboard (executions, failures, Batch jobs, Glue and EMR) and alarms to the topic."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        dashboard_name: str,
        state_machine: sfn.IStateMachine,
        functions: list[lambda_.IFunction],
        glue_job_name: str,
        topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        partition = Stack.of(self).partition

        self.failed_alarm = cw.Alarm(
            self,
            "ExecutionsFailed",
            metric=state_machine.metric_failed(period=_PERIOD, statistic="Sum"),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            alarm_description="An mlpipe pipeline execution failed",
        )
        self.timed_out_alarm = cw.Alarm(
            self,
            "ExecutionsTimedOut",
            metric=state_machine.metric_timed_out(period=_PERIOD, statistic="Sum"),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            alarm_description="An mlpipe pipeline execution timed out",
        )
        for alarm in (self.failed_alarm, self.timed_out_alarm):
            alarm.add_alarm_action(cw_actions.SnsAction(topic))

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
            cw.GraphWidget(
                title="Executions",
                width=12,
                left=[
                    state_machine.metric_started(period=_PERIOD, statistic="Sum"),
                    state_machine.metric_succeeded(period=_PERIOD, statistic="Sum"),
                    state_machine.metric_failed(period=_PERIOD, statistic="Sum"),
                    state_machine.metric_timed_out(period=_PERIOD, statistic="Sum"),
                ],
            ),
            cw.GraphWidget(
                title="Execution time",
                width=12,
                left=[
                    state_machine.metric_time(period=_PERIOD, statistic="p90"),
                ],
            ),
            cw.AlarmStatusWidget(title="Alarms", width=24, alarms=[self.failed_alarm, self.timed_out_alarm]),
        )
        for label, resource in _INTEGRATIONS.items():
            self.dashboard.add_widgets(
                cw.GraphWidget(
                    title=f"{label} (all state machines of the account)",
                    width=8,
                    left=[
                        integration("scheduled", "ServiceIntegrationsScheduled", resource),
                        integration("succeeded", "ServiceIntegrationsSucceeded", resource),
                        integration("failed", "ServiceIntegrationsFailed", resource),
                        integration("timed out", "ServiceIntegrationsTimedOut", resource),
                    ],
                )
            )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Glue clean job",
                width=12,
                left=[
                    cw.Metric(
                        namespace="Glue",
                        metric_name=name,
                        statistic="Sum",
                        period=_PERIOD,
                        label=label,
                        dimensions_map={"JobName": glue_job_name, "JobRunId": "ALL", "Type": "count"},
                    )
                    for name, label in (
                        ("glue.driver.aggregate.numCompletedTasks", "tasks completed"),
                        ("glue.driver.aggregate.numFailedTasks", "tasks failed"),
                    )
                ],
            ),
            cw.GraphWidget(
                title="Lambda errors and throttles",
                width=12,
                left=[
                    m
                    for f in functions
                    for m in (f.metric_errors(period=_PERIOD), f.metric_throttles(period=_PERIOD))
                ],
            ),
        )
