"""Structured JSON logs with the standard library: one JSON object per line on stdout (CloudWatch Logs).

`get_logger(__name__)` returns a logger under `mlpipe`; fields passed as `extra={...}` become keys of the
line. `lambda_entry` wraps a handler: it configures logging once, tags each line with the request id and
logs the outcome (a typed mlpipe error without its traceback, anything else with it)."""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from mlpipe_common.errors import MlpipeError

ROOT = "mlpipe"
_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = _request_id.get()
        if request_id:
            line["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def configure(stream: Any = None) -> logging.Logger:
    """Configure the `mlpipe` logger once: JSON lines, level from LOG_LEVEL (default INFO)."""
    logger = logging.getLogger(ROOT)
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    logger.setLevel(level if level in logging.getLevelNamesMapping() else "INFO")
    if not any(getattr(h, "_mlpipe", False) for h in logger.handlers):
        handler = logging.StreamHandler(stream or sys.stdout)
        handler.setFormatter(JsonFormatter(os.environ.get("POWERTOOLS_SERVICE_NAME", "mlpipe")))
        handler._mlpipe = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False
    return logger


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(f"{ROOT}.{name}")


Handler = TypeVar("Handler", bound=Callable[[Any, Any], Any])


def lambda_entry(handler: Handler) -> Handler:
    """Wrap a Lambda handler with request-scoped structured logging of its outcome."""
    log = get_logger(handler.__module__)

    @functools.wraps(handler)
    def wrapper(event: Any, context: Any) -> Any:
        configure()
        token = _request_id.set(getattr(context, "aws_request_id", None))
        started = time.perf_counter()
        action = event.get("action") if isinstance(event, dict) else None
        try:
            result = handler(event, context)
        except MlpipeError as exc:
            log.error("failed", extra={"action": action, "error_type": type(exc).__name__, "error": str(exc)})
            raise
        except Exception:
            log.exception("failed unexpectedly", extra={"action": action})
            raise
        else:
            elapsed = round(time.perf_counter() - started, 3)
            log.info("done", extra={"action": action, "elapsed_s": elapsed, "result": result})
            return result
        finally:
            _request_id.reset(token)

    return wrapper  # type: ignore[return-value]
