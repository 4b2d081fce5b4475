"""Typed errors. A Lambda reports an exception's class name as the error type and its message as the cause;
the state machine surfaces both as the execution's error, so every message here is written for a person."""

from __future__ import annotations


class MlpipeError(Exception):
    """Base class of the errors mlpipe raises on purpose."""


class InvalidInput(MlpipeError):
    """The execution input (or the payload a state passes) is invalid; the message says what and where."""


class ConfigurationError(MlpipeError):
    """The function's environment is missing or malformed: a deployment defect, not a user error."""


class CandidateMetricsError(MlpipeError):
    """A training candidate's metrics.json is missing, unreadable or lacks the workload's validation metric."""


class ModelArtifactError(MlpipeError):
    """A model or manifest object that a step needs is missing or malformed."""


class EvaluationError(MlpipeError):
    """The evaluation job's figure cannot be read: its metrics.json or the model manifest is missing or malformed."""


class QualityGateFailed(MlpipeError):
    """The chosen model's metric on the held-out test split does not meet the quality gate: it is not registered."""


class RegistrationRefused(MlpipeError):
    """Registration was asked for a model whose evaluation did not pass or does not match it."""
