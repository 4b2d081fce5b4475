"""The mlpipe client: start pipeline executions and submit Batch training jobs on a deployed mlpipe.

Resources are found from the stacks' CloudFormation outputs (`Deployment`); boto3 clients are created on
first use with adaptive retries (`Aws`). The `mlpipe` command (mlpipe/commands/) is a thin layer over this.
"""

from mlpipe.client.aws import Aws
from mlpipe.client.batch_jobs import Job, Submission, TrainingJobs, TrainingRequest
from mlpipe.client.discovery import OUTPUTS, Deployment
from mlpipe.client.errors import MlpipeClientError, NotFound, RunFailed, UsageError
from mlpipe.client.executions import Execution, Executions, PreparedRun

__all__ = [
    "OUTPUTS",
    "Aws",
    "Deployment",
    "Execution",
    "Executions",
    "Job",
    "MlpipeClientError",
    "NotFound",
    "PreparedRun",
    "RunFailed",
    "Submission",
    "TrainingJobs",
    "TrainingRequest",
    "UsageError",
]
