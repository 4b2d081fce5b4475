"""Fixtures of the client tests: mlpipe deployed in an in-process moto (see moto_deployment.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto_deployment import MOTO_CONFIG, REGION, Deployed, deploy, moto_gaps_filled


@pytest.fixture(scope="module")
def deployed() -> Iterator[Deployed]:
    """mlpipe deployed in an in-process moto (stacks MlpipeDev-*), one per test module: tests use their own
    run ids and job names, so they do not see each other's work."""
    from mlpipe.local.moto_patches import definitions_parsed_once

    # moto parses the definition at each module's deployment and for every execution: once is enough
    with moto_gaps_filled(), definitions_parsed_once(), mock_aws(config=MOTO_CONFIG):
        yield deploy(boto3.Session(region_name=REGION))


@pytest.fixture
def aws() -> Any:
    from mlpipe.client import Aws

    return Aws(region=REGION)


@pytest.fixture
def deployment(deployed: Deployed, aws: Any) -> Any:
    from mlpipe.client import Deployment

    return Deployment(aws, environ={})
