"""The ingest pipeline: authenticate, store first, then parse and apply.

The DRF view only calls these functions. Steps (DESIGN.md, "Data flow"):
`authenticate()` -> `store()` (committed before any parsing) -> `process()`.
"""

from __future__ import annotations

import logging
import re
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, unquote_plus

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, Q
from django.http import HttpRequest
from django.utils import timezone

from . import delays, impact, lifecycle, rollups, rows
from .impact import escape_nul
from .models import (
    AllowedNetwork,
    Credential,
    Delivery,
    Outcome,
    RefusalCounter,
    RefusalReason,
    RefusedAttempt,
    hash_secret,
)
from .security import address_allowed, client_address  # the peer, or X-Forwarded-For from TRUSTED_PROXIES only

logger = logging.getLogger(__name__)

REDACTED = "[redacted]"
LAST_USED_RESOLUTION = timedelta(minutes=1)
MAX_INT32 = 2**31 - 1
TOKEN_PARAMETER = "token"
# Headers never stored, whatever the credentials say.
ALWAYS_REDACTED_HEADERS = {"authorization", "cookie", "proxy-authorization"}


@dataclass
class Refusal:
    reason: str
    detail: str


@dataclass
class Authenticated:
    credential: Credential
    secret: str
    header_names: set[str]  # every credential header, all redacted from what is stored
    config: AuthConfig  # what the decision was made from; store() checks it still holds


@dataclass(frozen=True)
class AuthConfig:
    """The active credentials and allow-list, as this process last read them."""

    credentials: tuple[Credential, ...]
    networks: tuple[str, ...]  # active AllowedNetwork cidrs; empty: every address may send
    loaded_at: float


# Reading both for every postback cost two of its statements. A process keeps them for
# AUTH_CONFIG_MAX_AGE seconds instead, and never acts on a stale copy: a refusal is decided
# again from a fresh read, and store() inserts the delivery only if the credential used is still
# active, unexpired and unchanged and the allow-list is still the one checked (in the INSERT
# itself), so revoking a credential or narrowing the allow-list takes effect at once everywhere.
AUTH_CONFIG_MAX_AGE = 5.0
_auth_config: AuthConfig | None = None


def auth_config(*, refresh: bool = False) -> AuthConfig:
    global _auth_config
    config = _auth_config
    if refresh or config is None or time.monotonic() - config.loaded_at > AUTH_CONFIG_MAX_AGE:
        config = _auth_config = AuthConfig(
            credentials=tuple(Credential.objects.filter(active=True)),
            networks=tuple(sorted(AllowedNetwork.objects.filter(active=True).values_list("cidr", flat=True))),
            loaded_at=time.monotonic(),
        )
    return config


def forget_cached() -> None:
    """Drop what this process keeps between postbacks (tests call it between tests)."""
    global _auth_config
    _auth_config = None
    _last_used.clear()
    lifecycle.forget_cached()


# An HTTP header name is an RFC 9110 token.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def is_header_name(name: str) -> bool:
    return bool(_HEADER_NAME.match(name))


def _token_parameter(query_string: str) -> str | None:
    for name, value in parse_qsl(query_string, keep_blank_values=True):
        if name == TOKEN_PARAMETER:
            return value
    return None


def authenticate(request: HttpRequest) -> Authenticated | Refusal:
    """The allow-list, then the active credential the request carries (hashes compared in constant
    time). Decided from this process's copy of both; a refusal is confirmed from a fresh read."""
    result = _authenticate(request, auth_config())
    if isinstance(result, Refusal):
        result = _authenticate(request, auth_config(refresh=True))
    return result


def _authenticate(request: HttpRequest, config: AuthConfig, secret: str | None = None) -> Authenticated | Refusal:
    """Decide from `config`; with `secret`, from that secret rather than what the request carries
    (once read, the credential is scrubbed from the request)."""
    address = client_address(request)
    if not address_allowed(address, config.networks):
        return Refusal(RefusalReason.ADDRESS_NOT_ALLOWED, f"{address} is not in the allow-list.")
    if not config.credentials:
        return Refusal(
            RefusalReason.NO_CREDENTIAL_CONFIGURED,
            "No postback credential is configured, so every postback is refused. Add one in Django admin "
            "(Events > Credentials) or with `manage.py create_credential --label impact`.",
        )
    presented = {secret} if secret else _presented(request, config)
    names = {c.header_name for c in config.credentials}
    if not presented:
        return Refusal(
            RefusalReason.MISSING_CREDENTIAL,
            f"No credential presented: send it in the {' or '.join(sorted(names))} header, "
            f"or as the `{TOKEN_PARAMETER}` query parameter.",
        )
    return _match(presented, config)


def _presented(request: HttpRequest, config: AuthConfig) -> set[str]:
    """Every value the request carries where a credential may be: the credentials' headers and `token`."""
    values = {request.headers.get(c.header_name) for c in config.credentials}
    values.add(_token_parameter(request.META.get("QUERY_STRING", "")))
    return {value for value in values if value}


def _match(presented: set[str], config: AuthConfig) -> Authenticated | Refusal:
    now = timezone.now()
    names = {c.header_name for c in config.credentials}
    expired = None
    for secret in presented:
        digest = hash_secret(secret)
        for credential in config.credentials:
            if credential.matches(digest):
                if credential.expires_at is not None and credential.expires_at <= now:
                    expired = credential
                    continue
                return Authenticated(credential, secret, names, config)
    if expired is not None:
        return Refusal(
            RefusalReason.EXPIRED_CREDENTIAL,
            "The credential presented has expired; ask an admin to extend it or issue a new one.",
        )
    return Refusal(RefusalReason.INVALID_CREDENTIAL, "The credential presented is not recognised.")


def record_refusal(request: HttpRequest, refusal: Refusal) -> None:
    """Count the refusal and keep its metadata (never the secret), capped."""
    now = timezone.now()
    with transaction.atomic():
        attempt = RefusedAttempt.objects.create(
            at=now,
            reason=refusal.reason,
            remote_addr=client_address(request),
            method=request.method[:10],
            path=request.path[:300],
            header_names=sorted(escape_nul(name)[:200] for name in request.headers)[:100],
            size=min(_content_length(request), MAX_INT32),  # the header is the sender's word
        )
        count_refusal(refusal.reason, now)
    # Keep at most REFUSED_ATTEMPTS_KEEP rows (+ 99): trim in batches, not on every request. The
    # request that created every 100th row trims (looking at the newest row instead missed batches
    # under concurrent refusals).
    keep = settings.REFUSED_ATTEMPTS_KEEP
    if attempt.pk % 100 == 0:
        cutoff = RefusedAttempt.objects.order_by("-id").values_list("id", flat=True)[keep : keep + 1]
        if cutoff:
            RefusedAttempt.objects.filter(id__lte=cutoff[0]).delete()
    logger.warning("postback refused: %s from %s", refusal.reason, client_address(request))


def count_refusal(reason: str, now=None) -> None:
    now = now or timezone.now()
    counter = RefusalCounter.objects.filter(reason=reason)
    if not counter.update(count=F("count") + 1, last_at=now):
        try:
            with transaction.atomic():
                RefusalCounter.objects.create(reason=reason, count=1, last_at=now)
        except IntegrityError:  # a concurrent first refusal created it
            counter.update(count=F("count") + 1, last_at=now)


def _content_length(request: HttpRequest) -> int:
    try:
        return max(0, int(request.META.get("CONTENT_LENGTH") or 0))
    except ValueError:
        return 0


def body_too_large(request: HttpRequest) -> bool:
    """Decided from Content-Length, before the body is read."""
    return _content_length(request) > settings.POSTBACK_MAX_BODY_BYTES


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
        body=body.replace(secret.encode(), REDACTED.encode()),
        headers=redact_headers(request, auth.header_names, secret),
        remote_addr=client_address(request),
    )
    for _ in range(3):  # more than one change between a fresh read and the INSERT would be odd
        delivery.credential = auth.credential
        if rows.insert(delivery, where=_still_authenticated(auth, now)):
            _note_use(auth.credential, now)
            return delivery
        auth = _authenticate(request, auth_config(refresh=True), secret)
        if isinstance(auth, Refusal):
            return auth
    raise DatabaseError("the credentials kept changing while the delivery was being stored")  # 503: retried


def _still_authenticated(auth: Authenticated, now) -> tuple[str, list]:
    """SQL (and parameters) true while the credential used is unchanged, active and unexpired,
    and the allow-list holds exactly the networks it was checked against."""
    credential, networks = auth.credential, auth.config.networks
    # Table names from the models; every value is a parameter.
    sql = (
        f"EXISTS (SELECT 1 FROM {Credential._meta.db_table} WHERE id = %s AND secret_hash = %s AND active"  # noqa: S608
        " AND (expires_at IS NULL OR expires_at > %s))"
        f" AND (SELECT COUNT(*) FROM {AllowedNetwork._meta.db_table} WHERE active) = %s"
    )
    params = [credential.pk, credential.secret_hash, now, len(networks)]
    if networks:
        placeholders = ", ".join(["%s"] * len(networks))
        sql += (
            f" AND NOT EXISTS (SELECT 1 FROM {AllowedNetwork._meta.db_table} WHERE active"  # noqa: S608
            f" AND cidr NOT IN ({placeholders}))"
        )
        params += networks
    return sql, params


# Last use, at most once a minute: one row shared by every postback must not become a hot spot
# (each update would queue every worker on its row lock), nor cost a statement per postback.
# The use count is counted from deliveries.
_last_used: dict[int, datetime] = {}


def _note_use(credential: Credential, now: datetime) -> None:
    noted = _last_used.get(credential.pk)
    if noted is not None and now - noted < LAST_USED_RESOLUTION:
        return
    Credential.objects.filter(pk=credential.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
    ).update(last_used_at=now)
    _last_used[credential.pk] = now


_lookup_cache: dict[tuple[str, ...], dict[str, str]] = {}


def field_lookup() -> dict[str, str]:
    key = tuple(settings.POSTBACK_UPDATE_TIME_FIELDS)
    if key not in _lookup_cache:
        _lookup_cache[key] = impact.build_lookup(key)
    return _lookup_cache[key]


def process(delivery: Delivery) -> Delivery:
    """Parse and apply a stored delivery; its outcome says what happened. Safe to call again (replay)."""
    if delivery.pruned_at is not None:  # `manage.py prune` removed the payload: keep what it said
        return delivery
    started = time.monotonic()
    delivery.attempts += 1
    delivery.processed_at = timezone.now()
    delivery.reason = ""
    delivery.traceback = ""
    try:
        postback = impact.parse(
            delivery.query_string, bytes(delivery.body), delivery.content_type, lookup=field_lookup()
        )
    except impact.InvalidPayload as exc:
        delivery.outcome = Outcome.INVALID
        delivery.reason = escape_nul(str(exc))
        delivery.processing_ms = _elapsed_ms(started)
        _record_outcome(delivery, _PROCESSED_FIELDS)
        return delivery
    except Exception as exc:  # a bug in the parser: keep the delivery for replay once fixed
        return _failed(delivery, exc, started)

    delivery.action_id = postback.action_id[:255]
    try:
        if lifecycle.can_create() and _create(postback, delivery, started):
            return delivery
        with transaction.atomic():
            result = lifecycle.apply(postback, received_at=delivery.received_at, delivery=delivery)
            delays.after_apply(result)  # late postback alert; answers a missing change (issue 4)
            delivery.outcome = result.outcome
            delivery.event = result.event
            delivery.processing_ms = _elapsed_ms(started)
            _record_outcome(delivery, [*_PROCESSED_FIELDS, "action_id", "event"])
    except Exception as exc:
        return _failed(delivery, exc, started)
    return delivery


def _create(postback: impact.Postback, delivery: Delivery, started: float) -> bool:
    """The first postback of an action, when nothing else is to be done for it, in one statement
    (lifecycle.create) with its outcome; False if it is not that, and nothing was written."""
    delivery.outcome = Outcome.APPLIED
    delivery.processing_ms = _elapsed_ms(started)  # up to the statement that writes it
    fields = [*_PROCESSED_FIELDS, "action_id"]
    created = lifecycle.create(
        postback,
        received_at=delivery.received_at,
        delivery=delivery,
        outcome_fields=fields,
        only_if=delays.nothing_after,
    )
    if created is None:
        delivery.outcome = Outcome.RECEIVED
    return created is not None


def _failed(delivery: Delivery, exc: Exception, started: float) -> Delivery:
    """Record a processing error with its traceback (call from an `except` block)."""
    logger.exception("delivery %s failed", delivery.pk)
    delivery.outcome = Outcome.FAILED
    delivery.event = None
    delivery.reason = escape_nul(f"{type(exc).__name__}: {exc}")[:2000]
    delivery.traceback = escape_nul(traceback.format_exc())[-20_000:]
    delivery.processing_ms = _elapsed_ms(started)
    # If the database is gone this raises too: the view answers 503, the delivery stays
    # `received` (replayable) and impact.com's retry is deduplicated.
    _record_outcome(delivery, [*_PROCESSED_FIELDS, "action_id", "event"])
    return delivery


def _record_outcome(delivery: Delivery, fields: list[str]) -> None:
    rows.update(delivery, fields)
    rollups.changed(delivery.received_at)  # a replay changes a day the overview may have counted


_PROCESSED_FIELDS = ["outcome", "reason", "traceback", "attempts", "processed_at", "processing_ms"]


def _elapsed_ms(started: float) -> int:
    return max(0, round((time.monotonic() - started) * 1000))


def replay(deliveries) -> dict[str, int]:
    """Process stored deliveries again; counts outcomes. Applied ones stay applied."""
    counts: dict[str, int] = {}
    for delivery in deliveries.iterator(chunk_size=500):
        outcome = process(delivery).outcome
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts
