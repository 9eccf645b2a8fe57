"""Structured logging: every line of a request carries its request id and, for a postback, its
delivery id (contextvars, so each request of a worker sees its own; reset when the request ends).

LOG_FORMAT=json (the default when PRODUCTION=true) writes one JSON object per line:
`{"time": ..., "level": ..., "logger": ..., "message": ..., "request_id": ..., "delivery_id": ...}`.
"""

from __future__ import annotations

import json
import logging
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
delivery_id: ContextVar[int | None] = ContextVar("delivery_id", default=None)


def bind_delivery(pk: int | None) -> None:
    """From here to the end of the request, log lines carry this delivery id."""
    delivery_id.set(pk)


class RequestContextMiddleware:
    """Gives each request an id for its log lines and starts it with no delivery id.

    Not reset when the response leaves: Django's own "django.request" line (4xx/5xx) is written
    after the middleware returned, and must still carry the ids. The next request overwrites them.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id.set(uuid.uuid4().hex[:16])
        delivery_id.set(None)
        return self.get_response(request)


class ContextFilter(logging.Filter):
    """Puts `request_id` and `delivery_id` on every record (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        record.delivery_id = delivery_id.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            "delivery_id": getattr(record, "delivery_id", None),
            "process": record.process,
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)
