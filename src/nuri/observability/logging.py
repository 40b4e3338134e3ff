"""Structured JSON log lines with request ids, and nothing personal in them.

`configure_logging()` installs a JSON formatter on the root logger; `request_context(rid)` binds a
request id that every line logged inside it carries. Extra fields whose names suggest content
(messages, prompt, text, value …) are replaced by "[redacted]" before anything is written, so a
careless `log.info(..., extra={"prompt": p})` cannot leak a value.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any, TextIO

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("nuri_request_id", default=None)

_REDACT = frozenset({
    "messages", "message_content", "content", "prompt", "prompts", "completion", "text", "value", "values",
    "body", "input", "output", "authorization", "api_key", "key", "secret", "password", "entity", "entities",
})
_STD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, request_id and safe extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = getattr(record, "request_id", None) or REQUEST_ID.get()
        if rid:
            out["request_id"] = rid
        for name, value in record.__dict__.items():
            if name in _STD or name == "request_id" or name.startswith("_"):
                continue
            out[name] = "[redacted]" if name.lower() in _REDACT else _plain(value)
        if record.exc_info and record.exc_info[0] is not None:
            out["error"] = record.exc_info[0].__name__   # the type only: messages may quote input
        return json.dumps(out, ensure_ascii=False, default=str)


def _plain(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): ("[redacted]" if str(k).lower() in _REDACT else _plain(v)) for k, v in value.items()}
    return str(value)


def configure_logging(level: str | int = "INFO", stream: TextIO | None = None) -> logging.Handler:
    """Send every logger's records to `stream` (stderr) as JSON lines; returns the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h.formatter, JsonFormatter)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    return handler


@contextlib.contextmanager
def request_context(request_id: str) -> Iterator[None]:
    token = REQUEST_ID.set(request_id)
    try:
        yield
    finally:
        REQUEST_ID.reset(token)


def get_logger(name: str = "nuri") -> logging.Logger:
    return logging.getLogger(name)
