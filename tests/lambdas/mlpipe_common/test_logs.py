from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from mlpipe_common import logs
from mlpipe_common.errors import InvalidInput


@pytest.fixture
def stream(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "svc")
    logger = logging.getLogger(logs.ROOT)
    saved = list(logger.handlers)
    logger.handlers.clear()
    buffer = io.StringIO()
    logs.configure(buffer)
    yield buffer
    logger.handlers[:] = saved


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_handler_logs_one_json_line_with_request_id_and_fields(stream: io.StringIO) -> None:
    @logs.lambda_entry
    def handler(event: Any, context: Any) -> dict[str, Any]:
        logs.get_logger("t").info("working", extra={"run_id": "r-1"})
        return {"ok": True}

    assert handler({"action": "expand"}, SimpleNamespace(aws_request_id="req-1")) == {"ok": True}
    working, done = lines(stream)
    assert working["message"] == "working" and working["run_id"] == "r-1"
    assert working["request_id"] == "req-1" and working["service"] == "svc" and working["level"] == "INFO"
    assert done["message"] == "done" and done["action"] == "expand" and done["result"] == {"ok": True}


def test_typed_errors_are_logged_without_traceback_and_reraised(stream: io.StringIO) -> None:
    @logs.lambda_entry
    def handler(event: Any, context: Any) -> None:
        raise InvalidInput("input.raw_uri: bad")

    with pytest.raises(InvalidInput, match=r"input.raw_uri: bad"):
        handler({}, None)
    (line,) = lines(stream)
    assert line["level"] == "ERROR" and line["error_type"] == "InvalidInput"
    assert "exception" not in line


def test_unexpected_errors_keep_their_traceback(stream: io.StringIO) -> None:
    @logs.lambda_entry
    def handler(event: Any, context: Any) -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        handler({}, None)
    (line,) = lines(stream)
    assert "Traceback" in line["exception"] and "boom" in line["exception"]
