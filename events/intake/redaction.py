"""Credentials never stored, never logged: redacting the stored delivery, scrubbing the request."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote_plus

from django.http import HttpRequest

from events.impact import escape_nul

from .credentials import TOKEN_PARAMETER

REDACTED = "[redacted]"

# Headers never stored, whatever the credentials say.
ALWAYS_REDACTED_HEADERS = {"authorization", "cookie", "proxy-authorization"}


def redact_query_string(query_string: str, secret: str | None) -> str:
    """The query string as it arrived (same bytes, so it parses the same), with the token redacted."""
    if not query_string:
        return ""
    pieces = query_string.split("&")
    for i, piece in enumerate(pieces):
        if unquote_plus(piece.split("=", 1)[0]) == TOKEN_PARAMETER:
            pieces[i] = f"{TOKEN_PARAMETER}={REDACTED}"
    query_string = "&".join(pieces)
    if secret:
        query_string = query_string.replace(secret, REDACTED)
    return query_string


def redact_headers(request: HttpRequest, credential_headers: set[str], secret: str | None) -> dict[str, str]:
    redacted = {name.lower() for name in credential_headers} | ALWAYS_REDACTED_HEADERS
    headers = {}
    for name, value in request.headers.items():
        if name.lower() in redacted:
            value = REDACTED
        elif secret and secret in value:
            value = value.replace(secret, REDACTED)
        headers[escape_nul(name)[:200]] = escape_nul(value)[:1000]
    return headers


def scrub_credentials(request: HttpRequest, header_names: Iterable[str], secret: str = "") -> None:
    """Once the credential has been read, blank it out of the request itself.

    Django's "django.request" log records, error reports and anything else that prints the
    request (its repr shows the full path with the query string, reports show every header) then
    never see it. The stored delivery is redacted separately (`redact_*`).
    """
    meta = request.META
    query = meta.get("QUERY_STRING", "")
    if TOKEN_PARAMETER in query:
        pattern = rf"(^|&){re.escape(TOKEN_PARAMETER)}=[^&]*"
        meta["QUERY_STRING"] = query = re.sub(pattern, rf"\g<1>{TOKEN_PARAMETER}={REDACTED}", query)
    if secret and secret in query:  # a credential pasted into another parameter
        meta["QUERY_STRING"] = query.replace(secret, REDACTED)
    for name in {*header_names, "Authorization", "Proxy-Authorization"}:
        key = "HTTP_" + name.upper().replace("-", "_")
        if key in meta:
            meta[key] = REDACTED
    request.__dict__.pop("headers", None)  # HttpRequest.headers is cached from META
    request.__dict__.pop("GET", None)
