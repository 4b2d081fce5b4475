"""boto3 sessions and clients for the mlpipe client: created on first use, with adaptive retries.

Region and credentials come from `--region`/`--profile` when given, else from the usual AWS sources
(AWS_REGION, AWS_PROFILE, ~/.aws/config, ...). AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_<SERVICE>) points the
clients at another endpoint, e.g. a moto server.
"""

from __future__ import annotations

from typing import Any

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config
from botocore.exceptions import NoRegionError

import mlpipe

# Adaptive mode: standard retries plus client-side rate limiting when AWS throttles (a long `--wait`
# polls for hours); 10 attempts ride out a burst of throttling before the one-line error.
RETRIES = Config(
    retries={"mode": "adaptive", "max_attempts": 10},
    user_agent_extra=f"mlpipe-client/{mlpipe.__version__}",
)


# botocore's loaders (by data path), shared by the sessions of this process: a loader keeps the service models
# it has parsed, and a new session with a loader of its own would read those JSON files again.
_LOADERS: dict[str | None, botocore.loaders.Loader] = {}


def new_session(*, region: str | None, profile: str | None) -> boto3.Session:
    """A boto3 session (ProfileNotFound for an unknown profile) whose clients share the process's loader."""
    core = botocore.session.get_session()
    session = boto3.Session(botocore_session=core, profile_name=profile, region_name=region)
    data_path = core.get_config_variable("data_path")  # AWS_DATA_PATH or the profile's data_path
    loader = _LOADERS.get(data_path)
    if loader is None:
        loader = _LOADERS.setdefault(data_path, botocore.loaders.create_loader(data_path))
    core.register_component("data_loader", loader)  # boto3's own loader (resources) stays the session's
    return session


class Aws:
    """One session and one client per service, created when first asked for."""

    def __init__(self, *, region: str | None = None, profile: str | None = None) -> None:
        self.region_arg = region
        self.profile = profile
        self._session: boto3.Session | None = None
        self._clients: dict[str, Any] = {}

    @property
    def session(self) -> boto3.Session:
        if self._session is None:
            self._session = new_session(region=self.region_arg, profile=self.profile)
        return self._session

    @property
    def region(self) -> str:
        """The region the clients use; NoRegionError (a one-line error) when none is configured."""
        region = self.session.region_name
        if not region:
            raise NoRegionError()
        return str(region)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(service, config=RETRIES)
        return self._clients[service]
