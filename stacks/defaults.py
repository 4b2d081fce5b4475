"""Opinionated defaults shared by every construct: runtimes, architecture, timeouts, paths, tags.

Change a default here, not in the construct that uses it.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs

from mlpipe.config import MlpipeConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
LAMBDAS_DIR = REPO_ROOT / "lambdas"
GLUE_JOBS_DIR = REPO_ROOT / "glue_jobs"
EMR_STEPS_DIR = REPO_ROOT / "emr_steps"
BATCH_CONTAINERS_DIR = REPO_ROOT / "batch_containers"
# Built by `make setup` from lambdas/requirements.txt (a zip: synth neither hashes nor copies a folder of 150 MB).
LAMBDA_LAYER_ZIP = REPO_ROOT / "build" / "lambda-layer.zip"
LAMBDA_REQUIREMENTS = LAMBDAS_DIR / "requirements.txt"

# The latest Python runtime that the pinned aws-cdk-lib offers, on Graviton (cheaper per GB-second).
LAMBDA_RUNTIME = lambda_.Runtime.PYTHON_3_14
LAMBDA_ARCHITECTURE = lambda_.Architecture.ARM_64
LAMBDA_TIMEOUT = Duration.minutes(5)
LAMBDA_TRACING = lambda_.Tracing.ACTIVE

# Step Functions task timeouts: a little above the work's own timeout, so the work reports first.
LAMBDA_TASK_TIMEOUT = Duration.minutes(6)
EMR_CREATE_CLUSTER_TIMEOUT = Duration.minutes(60)
EMR_STEP_TIMEOUT = Duration.hours(6)
EMR_TERMINATE_TIMEOUT = Duration.minutes(30)
SNS_TASK_TIMEOUT = Duration.minutes(1)
# EMR's TLS certificates (lambdas/certificates/): valid a year, renewed 45 days before the end, alarmed at 30.
CERTIFICATES_DAYS = 365
CERTIFICATES_ALARM_DAYS = 30
CERTIFICATES_NAMESPACE = "mlpipe/EmrCertificates"
CERTIFICATES_METRIC = "DaysToExpiry"
# A Glue run that cannot get resources retries for at most 15 minutes before it fails (Glue's "job run
# statuses"); the state allows that, then the run's own Timeout, then a margin for start and stop.
GLUE_START_WAIT_MINUTES = 15
TASK_BOUND_MARGIN_MINUTES = 10


def glue_task_bound(config: MlpipeConfig) -> Duration:
    """The Glue clean state's TimeoutSeconds: the longest a run can take that has not failed on its own."""
    return Duration.minutes(GLUE_START_WAIT_MINUTES + config.glue.timeout_minutes + TASK_BOUND_MARGIN_MINUTES)


def batch_task_bound(config: MlpipeConfig) -> Duration:
    """A Batch state's TimeoutSeconds. A job's timeout counts from each attempt's start (Batch's "job
    timeouts"), so RUNNABLE time is not in it; each attempt may wait RUNNABLE up to the queues' limit first."""
    b = config.batch
    per_attempt = b.runnable_timeout_minutes + b.job_timeout_minutes
    return Duration.minutes(b.retry_attempts * per_attempt + TASK_BOUND_MARGIN_MINUTES)


# Every task's retries on transient errors: exponential backoff from RETRY_INTERVAL, capped at RETRY_MAX_DELAY.
RETRY_INTERVAL = Duration.seconds(2)
RETRY_MAX_DELAY = Duration.seconds(60)

# Objects under these prefixes of the artifacts bucket expire (lifecycle rules).
CHECKPOINT_EXPIRY = Duration.days(30)
TMP_EXPIRY = Duration.days(7)

# Tag that AWS's managed EMR service policy v2 requires on every resource EMR creates or uses.
EMR_MANAGED_POLICY_TAG = ("for-use-with-amazon-emr-managed-policies", "true")

_ACCOUNT_ID = Aws.ACCOUNT_ID  # the `AWS::AccountId` token, read from the kernel once


def bucket_name(config: MlpipeConfig, purpose: str) -> str:
    """`mlpipe-dev-curated-<account>-<region>`: unique per account and region, known to every stack.

    Deterministic names let each stack refer to the lake without cross-stack exports, and let the IAM
    statements (and their cdk-nag acknowledgements) name exact ARNs.
    """
    account = config.account or _ACCOUNT_ID  # each stack's account (platform.py gives them the config's)
    return f"{config.stack_prefix.lower()}-{config.env}-{purpose}-{account}-{config.region}"


def longest_bucket_name(config: MlpipeConfig) -> int:
    """The length of the longest lake bucket name (a 12-digit account in place of the account token)."""
    return max(len(f"{config.stack_prefix}-{config.env}-{p}-{'0' * 12}-{config.region}") for p in _PURPOSES)


_PURPOSES = ("raw", "curated", "artifacts", "logs")


def resource_name(config: MlpipeConfig, suffix: str = "") -> str:
    """`mlpipe-dev` (or `mlpipe-dev-<suffix>`): fixed names of account-wide resources, per prefix and env."""
    return f"{config.stack_prefix.lower()}-{config.env}" + (f"-{suffix}" if suffix else "")


# Glue database and curated-table names (underscore: Athena and Glue prefer it).
def glue_database_name(config: MlpipeConfig) -> str:
    return f"{config.stack_prefix.lower()}_{config.env}"


def removal_policy(config: MlpipeConfig) -> RemovalPolicy:
    """Stateful resources are retained unless the configuration explicitly opts in to deletion."""
    return RemovalPolicy.DESTROY if config.destroy_stateful else RemovalPolicy.RETAIN


_RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}


def log_retention(days: int) -> logs.RetentionDays:
    """The RetentionDays member for a number of days that config validation has accepted."""
    return _RETENTION[days]
