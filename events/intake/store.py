"""Storing a delivery: committed, redacted, before anything parses it."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils import timezone

from events.common.networks import client_address
from events.impact import escape_nul
from events.models import IncomingDelivery

from .credentials import Authenticated, note_use
from .redaction import redact_body, redact_headers, redact_query_string


def store(request: HttpRequest, auth: Authenticated, body: bytes) -> IncomingDelivery:
    """Commit the delivery (redacted; `received`, the database's default) before anything parses
    it: one INSERT in autocommit. A processor applies it (`events.processing`)."""
    now = timezone.now()
    secret = auth.secret
    delivery = IncomingDelivery.objects.create(
        received_at=now,
        method=request.method[:10],
        path=request.path[:300],
        query_string=redact_query_string(request.META.get("QUERY_STRING", ""), secret).replace("\x00", ""),
        content_type=escape_nul(request.META.get("CONTENT_TYPE", ""))[:200],
        body=redact_body(body, secret),
        headers=redact_headers(request, auth.header_names, secret),
        remote_addr=client_address(request),
        credential=auth.credential,
    )
    note_use(auth.credential, now)
    return delivery
