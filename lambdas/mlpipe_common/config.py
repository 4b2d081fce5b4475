"""Settings read from the function's environment, in one place. Missing or malformed values raise
`ConfigurationError` naming the variable."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any

from mlpipe_common.errors import ConfigurationError


def require_env(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise ConfigurationError(f"environment variable {name} is not set")
    return value


def int_env(name: str, default: int, *, minimum: int, maximum: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"environment variable {name}={raw!r} is not an integer") from None
    if not minimum <= value <= maximum:
        raise ConfigurationError(f"environment variable {name}={value} is outside [{minimum}, {maximum}]")
    return value


def float_env(name: str, *, minimum: float, maximum: float) -> float:
    raw = require_env(name)
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"environment variable {name}={raw!r} is not a number") from None
    if not minimum <= value <= maximum:
        raise ConfigurationError(f"environment variable {name}={value} is outside [{minimum}, {maximum}]")
    return value


def json_env(name: str) -> Any:
    raw = require_env(name)
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"environment variable {name} is not valid JSON: {exc}") from None


WORKLOAD_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")


@dataclass(frozen=True)
class Buckets:
    """The project's three buckets (Storage stack), and the workload whose pipeline this is: its objects lie
    under `<kind>/<workload>/` (`features/<workload>/<run_id>/`, `runs/<workload>/<run_id>/`, ...)."""

    raw: str
    curated: str
    artifacts: str
    workload: str

    @classmethod
    def from_env(cls) -> Buckets:
        return cls(
            raw=require_env("RAW_BUCKET"),
            curated=require_env("CURATED_BUCKET"),
            artifacts=require_env("ARTIFACTS_BUCKET"),
            workload=workload_name(),
        )


def workload_name() -> str:
    name = require_env("WORKLOAD_NAME")
    if not WORKLOAD_NAME.match(name):
        raise ConfigurationError(f"environment variable WORKLOAD_NAME={name!r} is not a workload name")
    return name
