"""boto3 clients, created on first use (never at import time) and reused while the execution environment
stays warm. Tests that patch AWS with moto call `reset_clients()` so each mock gets fresh clients."""

from __future__ import annotations

import functools
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, user_agent_extra="mlpipe")


@functools.cache
def client(service: str) -> Any:
    """The shared client of `service` (region, credentials and AWS_ENDPOINT_URL from the environment)."""
    return boto3.client(service, config=_CONFIG)


def reset_clients() -> None:
    client.cache_clear()
