"""Credentials never stored, never logged: redacting the stored delivery, scrubbing the request.

The secret presented is known in clear for the length of the request (every other one only as a
keyed hash), and it is redacted however the sender wrote it: as it is, percent-encoded (any
character, either case of hex, `+` for a space), or JSON-escaped (`\\u0041`, `\\/`, `\\n`...),
each character in any of those forms. The `token` parameter, and every header a credential was
ever given (`CredentialHeader`), are redacted whatever they hold.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from functools import lru_cache

from django.http import HttpRequest

from events.impact import escape_nul

from .credentials import TOKEN_PARAMETER, is_token_name

REDACTED = "[redacted]"

# Headers never stored, whatever the credentials say.
ALWAYS_REDACTED_HEADERS = {"authorization", "cookie", "proxy-authorization"}


def _hex(value: int, width: int) -> str:
    """`2f` as `2[fF]`: hex digits in either case."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in f"{value:0{width}x}")


def _char_forms(char: str) -> list[str]:
    """Patterns of every way one character of a secret may be written."""
    forms = [re.escape(char), "".join(f"%{_hex(byte, 2)}" for byte in char.encode())]
    point = ord(char)
    if point < 0x10000:
        forms.append(rf"\\u{_hex(point, 4)}")
    else:  # a surrogate pair in JSON
        point -= 0x10000
        forms.append(rf"\\u{_hex(0xD800 + (point >> 10), 4)}\\u{_hex(0xDC00 + (point & 0x3FF), 4)}")
    short = json.dumps(char)[1:-1]
    if short.startswith("\\") and not short.startswith("\\u"):  # \" \\ \n \t ...
        forms.append(re.escape(short))
    if char == "/":
        forms.append(r"\\/")
    if char == " ":
        forms.append(r"\+")
    return forms


@lru_cache(maxsize=64)
def secret_pattern(secret: str) -> re.Pattern[str]:
    """The secret in any of its encodings (see the module docstring), as text."""
    return re.compile("".join(f"(?:{'|'.join(_char_forms(char))})" for char in secret))


@lru_cache(maxsize=64)
def _secret_bytes_pattern(secret: str) -> re.Pattern[bytes]:
    return re.compile(secret_pattern(secret).pattern.encode())


def redact_secret(text: str, secret: str | None) -> str:
    return secret_pattern(secret).sub(REDACTED, text) if secret else text


def redact_body(body: bytes, secret: str | None) -> bytes:
    """The body as it arrived, with every encoding of the secret redacted (UTF-8 bytes)."""
    return _secret_bytes_pattern(secret).sub(REDACTED.encode(), body) if secret else body


def redact_query_string(query_string: str, secret: str | None) -> str:
    """The query string as it arrived (same bytes, so it parses the same), with the token redacted."""
    if not query_string:
        return ""
    pieces = query_string.split("&")
    for i, piece in enumerate(pieces):
        if is_token_name(piece.partition("=")[0]):
            pieces[i] = f"{TOKEN_PARAMETER}={REDACTED}"
    return redact_secret("&".join(pieces), secret)


def redact_headers(request: HttpRequest, credential_headers: set[str], secret: str | None) -> dict[str, str]:
    redacted = {name.lower() for name in credential_headers} | ALWAYS_REDACTED_HEADERS
    headers = {}
    for name, value in request.headers.items():
        value = REDACTED if name.lower() in redacted else redact_secret(value, secret)
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
    if secret:  # a credential pasted into another parameter, in any encoding
        meta["QUERY_STRING"] = redact_secret(query, secret)
    for name in {*header_names, "Authorization", "Proxy-Authorization"}:
        key = "HTTP_" + name.upper().replace("-", "_")
        if key in meta:
            meta[key] = REDACTED
    request.__dict__.pop("headers", None)  # HttpRequest.headers is cached from META
    request.__dict__.pop("GET", None)
