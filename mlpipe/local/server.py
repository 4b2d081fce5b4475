"""An embedded moto server on 127.0.0.1: the local "AWS" of local mode.

`mock_aws` (what the scenario tests use) answers only the calls of this process. Local mode also runs the
jobs' real code in child processes (PyTorch entrypoints, Spark scripts), and they need the same S3, so the
harness can instead serve moto over HTTP on a free port of 127.0.0.1. Inside the `MotoServer` context:

- `AWS_ENDPOINT_URL` points every boto3 client (this process's and, through the environment, every child's)
  at the server; dummy credentials and the region are set, and the user's AWS configuration files and the
  instance metadata service are switched off, so nothing can reach a real account;
- `MOTO_PORT` is the server's port: moto's Step Functions interpreter builds its own clients from it;
- moto executes state machines (`stepfunctions.execute_state_machine`) and starts from empty backends.

On exit the server stops and the environment is restored.
"""

from __future__ import annotations

import logging
import os
from types import TracebackType
from typing import Any

LOOPBACK = "127.0.0.1"


class MotoServer:
    def __init__(self, region: str) -> None:
        self.region = region
        self.endpoint = ""
        self._server: Any = None
        self._saved_env: dict[str, str | None] = {}
        self._saved_config: bool | None = None

    def __enter__(self) -> MotoServer:
        from moto.core.config import default_user_config
        from moto.moto_api._internal.models import moto_api_backend
        from moto.moto_server.threaded_moto_server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
        moto_api_backend.reset()  # a fresh "account", as mock_aws gives
        sfn = default_user_config.setdefault("stepfunctions", {"execute_state_machine": False})
        self._saved_config = bool(sfn.get("execute_state_machine", False))
        sfn["execute_state_machine"] = True
        server = ThreadedMotoServer(ip_address=LOOPBACK, port=0, verbose=False)
        server.start()
        self._server = server
        host, port = server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        overlay = {
            "AWS_ENDPOINT_URL": self.endpoint,
            "MOTO_PORT": str(port),
            "AWS_ACCESS_KEY_ID": "mlpipe-local",
            "AWS_SECRET_ACCESS_KEY": "mlpipe-local",
            "AWS_SESSION_TOKEN": "mlpipe-local",
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "NO_PROXY": ",".join(filter(None, [LOOPBACK, "localhost", os.environ.get("NO_PROXY", "")])),
        }
        # Nothing may send a client elsewhere: per-service endpoints, a profile, the "ignore endpoints" switch.
        removed = [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL_")]
        removed += ["AWS_PROFILE", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"]
        self._saved_env = {key: os.environ.get(key) for key in (*overlay, *removed)}
        for key in removed:
            os.environ.pop(key, None)
        os.environ.update(overlay)
        _reset_lambda_clients()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        from moto.core.config import default_user_config

        if self._server is not None:
            self._server.stop()
            self._server = None
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _reset_lambda_clients()
        if self._saved_config is not None:
            default_user_config["stepfunctions"]["execute_state_machine"] = self._saved_config


def _reset_lambda_clients() -> None:
    """The Lambdas' code caches its boto3 clients (`mlpipe_common.aws`): drop them when the endpoint changes,
    so that none outlives the server it points to."""
    import sys

    module = sys.modules.get("mlpipe_common.aws")
    if module is not None:
        module.reset_clients()
