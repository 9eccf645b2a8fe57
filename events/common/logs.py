"""Structured logging: every line of a request carries its request id and, for a postback, its
delivery id (contextvars, so each request of a worker sees its own; reset when the request ends).

LOG_FORMAT=json (the default when PRODUCTION=true) writes one JSON object per line:
`{"level": ..., "logger": ..., "message": ..., "request_id": ..., "delivery_id": ..., "time": ...}`.
"""

from __future__ import annotations

import logging
import uuid
from contextvars import ContextVar

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

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


def json_formatter() -> JsonFormatter:
    """The LOG_FORMAT=json formatter (python-json-logger): one object per line, named as above.

    Other attributes a record carries are written too, except Django's `request`: its repr is the
    full path with the query string, where a credential may be (the endpoint scrubs its own).
    """
    return JsonFormatter(
        ["levelname", "name", "message", "request_id", "delivery_id", "process"],
        rename_fields={"levelname": "level", "name": "logger", "exc_info": "exception"},
        timestamp="time",
        reserved_attrs=[*RESERVED_ATTRS, "request"],
    )
