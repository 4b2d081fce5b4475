"""The pipeline's Lambda functions, run in this process from their source (`lambdas/`).

Each function is what the synthesized template says: its handler string and its environment variables
(references resolved). An invocation behaves like Lambda's: the event goes through JSON, the handler runs
with the function's environment, an exception becomes a function error whose payload is
`{"errorType", "errorMessage", "stackTrace"}`, and the result goes through JSON again.

Invocations are serialized by a lock: a handler reads its configuration from `os.environ`, which is
process-wide, so two functions must not run at the same time. (The pipeline's Lambdas are short; nothing
in the state machine depends on two of them overlapping.)

`LambdaServiceError` is the Lambda *service* refusing or failing an invocation (throttling, a service
fault), as distinct from the function failing; the harness reports it to Step Functions as
`Lambda.<code>`, the error names the state machine's Retry lists.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import threading
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mlpipe.local.assembly import CloudAssembly

LAMBDAS_DIR = Path(__file__).resolve().parents[2] / "lambdas"


class LambdaServiceError(Exception):
    """The Lambda service failed the Invoke call itself (e.g. code `TooManyRequestsException`)."""

    def __init__(self, code: str, message: str, *, status: int = 429) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Invocation:
    """What Lambda's Invoke returns: the payload (parsed JSON) and, for a function error, `Unhandled`."""

    payload: Any
    function_error: str | None = None


class LambdaInvoker(Protocol):
    def invoke(self, function: str, payload: bytes) -> Invocation: ...


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    arn: str
    handler: str  # "module.function"
    environment: Mapping[str, str]
    timeout_s: int = 3


@dataclass(frozen=True)
class _Context:
    """The parts of Lambda's context object that handlers commonly read."""

    function_name: str
    invoked_function_arn: str
    aws_request_id: str
    memory_limit_in_mb: int = 1024

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


class InProcessLambdas:
    """Every `AWS::Lambda::Function` of the assembly, invoked in-process by name or ARN."""

    _lock = threading.Lock()  # one process environment, so one invocation at a time (class-wide)

    def __init__(self, functions: Mapping[str, FunctionSpec], *, code_dir: Path = LAMBDAS_DIR) -> None:
        self.functions = dict(functions)
        self.code_dir = code_dir
        self._by_key = {key: spec for spec in functions.values() for key in (spec.name, spec.arn)}
        self._handlers: dict[str, Callable[[Any, Any], Any]] = {}

    @classmethod
    def from_assembly(cls, assembly: CloudAssembly, *, code_dir: Path = LAMBDAS_DIR) -> InProcessLambdas:
        functions = {}
        for stack, logical_id, resource in assembly.find("AWS::Lambda::Function"):
            props = resource.get("Properties", {})
            if "Handler" not in props:
                continue  # e.g. inline custom-resource providers: not part of the pipeline
            variables = props.get("Environment", {}).get("Variables", {})
            spec = FunctionSpec(
                name=assembly.ref(stack, logical_id),
                arn=assembly.get_att(stack, logical_id, "Arn"),
                handler=props["Handler"],
                environment={k: str(v) for k, v in assembly.resolve(variables, stack).items()},
                timeout_s=int(props.get("Timeout", 3)),
            )
            functions[logical_id] = spec
        return cls(functions, code_dir=code_dir)

    def spec(self, function: str) -> FunctionSpec:
        key = function.split(":function:", 1)[-1].split(":", 1)[0] if ":function:" in function else function
        spec = self._by_key.get(function) or self._by_key.get(key)
        if spec is None:
            raise LambdaServiceError(
                "ResourceNotFoundException", f"Function not found: {function}", status=404
            )
        return spec

    def invoke(self, function: str, payload: bytes) -> Invocation:
        spec = self.spec(function)
        event = json.loads(payload or b"{}")
        context = _Context(spec.name, spec.arn, str(uuid.uuid4()))
        with self._lock, self._environment(spec):
            handler = self._handler(spec.handler)
            try:
                result = handler(event, context)
            except Exception as exc:
                return Invocation(
                    payload={
                        "errorType": type(exc).__name__,
                        "errorMessage": str(exc),
                        "requestId": context.aws_request_id,
                        "stackTrace": traceback.format_tb(exc.__traceback__),
                    },
                    function_error="Unhandled",
                )
        # Lambda serializes the result: what is not JSON fails here, as it would in AWS.
        return Invocation(payload=json.loads(json.dumps(result)))

    def _handler(self, handler: str) -> Callable[[Any, Any], Any]:
        if handler not in self._handlers:
            if str(self.code_dir) not in sys.path:
                sys.path.insert(0, str(self.code_dir))
            module_name, _, function_name = handler.rpartition(".")
            module = importlib.import_module(module_name)
            self._handlers[handler] = getattr(module, function_name)
        return self._handlers[handler]

    @staticmethod
    @contextmanager
    def _environment(spec: FunctionSpec) -> Iterator[None]:
        region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
        overlay = {
            **spec.environment,
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_REGION": os.environ.get("AWS_REGION", region),
        }
        saved = {key: os.environ.get(key) for key in overlay}
        os.environ.update(overlay)
        try:
            yield
        finally:
            # A key the process did not have is emptied, never removed: other threads (the Batch, Glue and EMR
            # work of a Parallel branch) copy os.environ, and a key removed mid-copy raises KeyError there.
            for key, value in saved.items():
                os.environ[key] = "" if value is None else value
