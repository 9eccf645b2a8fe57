"""Storing a delivery: committed, redacted, before anything parses it."""

from __future__ import annotations

from django.db import DatabaseError
from django.http import HttpRequest
from django.utils import timezone

from events.common.networks import client_address
from events.impact import escape_nul
from events.models import Delivery, sql

from .credentials import Authenticated, Refusal, auth_config, decide, note_use
from .redaction import redact_body, redact_headers, redact_query_string


def store(request: HttpRequest, auth: Authenticated, body: bytes) -> Delivery | Refusal:
    """Commit the delivery (redacted) before anything parses it.

    One INSERT in autocommit, made only if what authenticated the request still holds in the
    database (see AUTH_CONFIG_MAX_AGE). If it no longer does, the decision is made again from a
    fresh read: a Refusal comes back if the request is now refused.
    """
    now = timezone.now()
    secret = auth.secret
    delivery = Delivery(
        received_at=now,
        method=request.method[:10],
        path=request.path[:300],
        query_string=redact_query_string(request.META.get("QUERY_STRING", ""), secret).replace("\x00", ""),
        content_type=escape_nul(request.META.get("CONTENT_TYPE", ""))[:200],
        body=redact_body(body, secret),
        headers=redact_headers(request, auth.header_names, secret),
        remote_addr=client_address(request),
    )
    for _ in range(3):  # more than one change between a fresh read and the INSERT would be odd
        delivery.credential = auth.credential
        if sql.insert_delivery_if_authenticated(delivery, auth.credential, auth.config.networks, now):
            note_use(auth.credential, now)
            return delivery
        auth = decide(request, auth_config(refresh=True), secret)
        if isinstance(auth, Refusal):
            return auth
    raise DatabaseError("the credentials kept changing while the delivery was being stored")  # 503: retried
