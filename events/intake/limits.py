"""Size limits, decided before anything is stored, and reading the raw body first."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def content_length(request: HttpRequest) -> int:
    try:
        return max(0, int(request.META.get("CONTENT_LENGTH") or 0))
    except ValueError:
        return 0


def body_too_large(request: HttpRequest) -> bool:
    """Decided from Content-Length, before the body is read."""
    return content_length(request) > settings.POSTBACK_MAX_BODY_BYTES


def read_body(request: HttpRequest) -> bytes | None:
    """The raw body, read before anything parses it; None when it is over the cap.

    A chunked body has no Content-Length, and Django then reads it as empty, although the server
    hands over the whole decoded body (gunicorn sets `wsgi.input_terminated`): read it from the
    WSGI stream ourselves, at most POSTBACK_MAX_BODY_BYTES + 1 bytes.
    """
    meta = request.META
    chunked = "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower() or meta.get("wsgi.input_terminated")
    if not meta.get("CONTENT_LENGTH") and chunked:
        limit, stream, chunks, size = settings.POSTBACK_MAX_BODY_BYTES, meta.get("wsgi.input"), [], 0
        while stream is not None and size <= limit:
            chunk = stream.read(min(65536, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return None if size > limit else b"".join(chunks)
    return request.body


def query_too_long(request: HttpRequest) -> bool:
    """Query strings are capped like bodies (impact.com's longest template is a few KB)."""
    return len(request.META.get("QUERY_STRING", "")) > settings.POSTBACK_MAX_BODY_BYTES
