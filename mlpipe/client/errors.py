"""The client's errors, and the one sentence that each AWS failure a user can fix deserves.

Every error here carries the exit status of the `mlpipe` command: 2 when nothing was done because of the
input or the environment (bad arguments, unknown stacks or queues, credentials, permissions), 1 when the
work ran and failed (a failed execution or job) or AWS kept throttling. Anything not recognized here is not
a user's error and keeps its traceback.
"""

from __future__ import annotations

from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ProfileNotFound,
    SSOTokenLoadError,
    TokenRetrievalError,
    UnauthorizedSSOTokenError,
)

USAGE = 2
FAILED = 1


class MlpipeClientError(Exception):
    """An error the `mlpipe` command reports as one line with `exit_code`."""

    exit_code = USAGE

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(MlpipeClientError):
    """Bad arguments or input: nothing was sent to AWS (exit 2)."""


class NotFound(MlpipeClientError):
    """A stack, output, queue, job definition, execution or job that does not exist (exit 2)."""


class AwsAccessError(MlpipeClientError):
    """Credentials, permissions, region or endpoint problems (exit 2), or throttling (exit 1)."""


class RunFailed(MlpipeClientError):
    """An execution or a job ended without success (exit 1)."""

    exit_code = FAILED


ACCESS_DENIED = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError", "Forbidden"}
)
EXPIRED = frozenset({"ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired"})
BAD_CREDENTIALS = frozenset(
    {
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
    }
)
THROTTLED = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
    }
)


def error_code(exc: ClientError) -> str:
    code: str = exc.response.get("Error", {}).get("Code", "")
    return code


def error_message(exc: ClientError) -> str:
    message: str = exc.response.get("Error", {}).get("Message", "") or str(exc)
    return message.rstrip(".")


def translate(exc: BaseException) -> MlpipeClientError | None:
    """The one-line error for an AWS failure that the user can fix; None for anything else."""
    if isinstance(exc, ClientError):
        code, operation = error_code(exc), exc.operation_name
        if code in ACCESS_DENIED:
            return AwsAccessError(
                f"access denied calling {operation}: {error_message(exc)} "
                "(check the IAM permissions of this identity, or use another --profile)"
            )
        if code in EXPIRED:
            return AwsAccessError(
                f"your AWS credentials have expired ({operation}): refresh them (e.g. `aws sso login`) and retry"
            )
        if code in BAD_CREDENTIALS:
            return AwsAccessError(
                f"AWS does not accept these credentials ({operation}: {code}): check AWS_PROFILE, --profile "
                "or the access keys in your environment"
            )
        if code in THROTTLED:
            return AwsAccessError(
                f"AWS throttled {operation} even after retries with backoff: wait a minute and try again",
                exit_code=FAILED,
            )
        return None
    if isinstance(exc, NoCredentialsError):
        return AwsAccessError(
            "no AWS credentials found: configure a profile (`aws configure` or `aws sso login`) and pass "
            "--profile, or set AWS_PROFILE or the AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY variables"
        )
    if isinstance(exc, TokenRetrievalError | SSOTokenLoadError | UnauthorizedSSOTokenError):
        return AwsAccessError(
            f"your AWS credentials have expired or cannot be refreshed: {exc} (run `aws sso login`)"
        )
    if isinstance(exc, NoRegionError):
        return AwsAccessError("no AWS region: pass --region or set AWS_REGION (or a region in your profile)")
    if isinstance(exc, ProfileNotFound):
        return AwsAccessError(f"{exc}: pass an existing --profile (see `aws configure list-profiles`)")
    if isinstance(exc, EndpointConnectionError):
        return AwsAccessError(
            f"cannot reach AWS at {exc.kwargs.get('endpoint_url')}: check the network, --region and "
            "AWS_ENDPOINT_URL"
        )
    return None


def is_code(exc: BaseException, *codes: str) -> bool:
    return isinstance(exc, ClientError) and error_code(exc) in codes


__all__ = [
    "FAILED",
    "USAGE",
    "AwsAccessError",
    "MlpipeClientError",
    "NotFound",
    "RunFailed",
    "UsageError",
    "error_code",
    "error_message",
    "is_code",
    "translate",
]
