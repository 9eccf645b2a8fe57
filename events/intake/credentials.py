"""Who may post: the active credentials (in their header, or the `token` query parameter) and the
allow-list, decided from this process's copy of both and confirmed from the database.

Secrets are stored as hashes and compared in constant time; several may be active at once
(rotation), each with an optional expiry.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import unquote_plus

from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from events.common.networks import address_allowed, client_address
from events.models import AllowedNetwork, Credential, CredentialHeader, RefusalReason, hash_secret

LAST_USED_RESOLUTION = timedelta(minutes=1)

TOKEN_PARAMETER = "token"


@dataclass
class Refusal:
    reason: str
    detail: str


@dataclass
class Authenticated:
    credential: Credential
    secret: str
    header_names: set[str]  # every credential header ever configured, all redacted from what is stored


@dataclass(frozen=True)
class AuthConfig:
    """The active credentials and allow-list, as this process last read them."""

    credentials: tuple[Credential, ...]
    networks: tuple[str, ...]  # active AllowedNetwork cidrs; empty: every address may send
    loaded_at: float
    header_names: frozenset[str] = frozenset()  # CredentialHeader: every credential header ever configured


# Reading both for every postback cost two of its statements. A process keeps them for at most
# AUTH_CONFIG_MAX_AGE seconds instead, so a credential revoked (or an allow-list narrowed) in admin is
# refused everywhere within that time; a refusal is always decided again from a fresh read, so a
# credential just created is accepted at once.
AUTH_CONFIG_MAX_AGE = 1.0
clock = time.monotonic  # seconds, for the age of this process's copy

_auth_config: AuthConfig | None = None


def auth_config(*, refresh: bool = False) -> AuthConfig:
    global _auth_config
    config = _auth_config
    if refresh or config is None or clock() - config.loaded_at > AUTH_CONFIG_MAX_AGE:
        config = _auth_config = AuthConfig(
            credentials=tuple(Credential.objects.filter(active=True)),
            networks=tuple(sorted(AllowedNetwork.objects.filter(active=True).values_list("cidr", flat=True))),
            loaded_at=clock(),
            header_names=frozenset(CredentialHeader.objects.values_list("name", flat=True)),
        )
    return config


def forget_cached() -> None:
    """Drop what this process keeps between postbacks (tests call it between tests)."""
    global _auth_config
    _auth_config = None
    _last_used.clear()


# An HTTP header name is an RFC 9110 token.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def is_header_name(name: str) -> bool:
    return bool(_HEADER_NAME.match(name))


def is_token_name(raw_name: str) -> bool:
    """Whether a name as written in a query string is `token`, percent-encoded or not."""
    return raw_name == TOKEN_PARAMETER or ("%" in raw_name and unquote_plus(raw_name) == TOKEN_PARAMETER)


def _token_parameter(query_string: str) -> str | None:
    """The first `token` value, decoded as `parse_qsl` would. Only that one is decoded: a postback
    carries some thirty parameters, and decoding them all was a fifth of the request's own time."""
    for piece in query_string.split("&"):
        raw_name, _, raw_value = piece.partition("=")
        if is_token_name(raw_name):
            return unquote_plus(raw_value)
    return None


def authenticate(request: HttpRequest) -> Authenticated | Refusal:
    """The allow-list, then the active credential the request carries (hashes compared in constant
    time). Decided from this process's copy of both; a refusal is confirmed from a fresh read."""
    result = _decide(request, auth_config())
    if isinstance(result, Refusal):
        result = _decide(request, auth_config(refresh=True))
    return result


def _decide(request: HttpRequest, config: AuthConfig) -> Authenticated | Refusal:
    """Decide from `config`: the allow-list, then the credentials the request carries."""
    address = client_address(request)
    if not address_allowed(address, config.networks):
        return Refusal(RefusalReason.ADDRESS_NOT_ALLOWED, f"{address} is not in the allow-list.")
    if not config.credentials:
        return Refusal(
            RefusalReason.NO_CREDENTIAL_CONFIGURED,
            "No postback credential is configured, so every postback is refused. Add one in Django admin "
            "(Events > Credentials) or with `manage.py create_credential --label impact`.",
        )
    presented = _presented(request, config)
    names = {c.header_name for c in config.credentials}
    if not presented:
        return Refusal(
            RefusalReason.MISSING_CREDENTIAL,
            f"No credential presented: send it in the {' or '.join(sorted(names))} header, "
            f"or as the `{TOKEN_PARAMETER}` query parameter.",
        )
    return _match(presented, config)


def presents_credential(request: HttpRequest) -> bool:
    """Whether the request carries anything where a credential may be (an active credential's
    header, or `token`), right or wrong. Nothing found is confirmed from a fresh read."""
    return bool(_presented(request, auth_config()) or _presented(request, auth_config(refresh=True)))


def _presented(request: HttpRequest, config: AuthConfig) -> set[str]:
    """Every value the request carries where a credential may be: the credentials' headers and `token`."""
    values = {request.headers.get(c.header_name) for c in config.credentials}
    values.add(_token_parameter(request.META.get("QUERY_STRING", "")))
    return {value for value in values if value}


def _match(presented: set[str], config: AuthConfig) -> Authenticated | Refusal:
    now = timezone.now()
    names = {c.header_name for c in config.credentials} | config.header_names
    expired = None
    for secret in presented:
        digest = hash_secret(secret)
        for credential in config.credentials:
            if credential.matches(digest):
                if credential.expires_at is not None and credential.expires_at <= now:
                    expired = credential
                    continue
                return Authenticated(credential, secret, names)
    if expired is not None:
        return Refusal(
            RefusalReason.EXPIRED_CREDENTIAL,
            "The credential presented has expired; ask an admin to extend it or issue a new one.",
        )
    return Refusal(RefusalReason.INVALID_CREDENTIAL, "The credential presented is not recognised.")


# Last use, at most once a minute: one row shared by every postback must not become a hot spot
# (each update would queue every worker on its row lock), nor cost a statement per postback.
# The use count is counted from deliveries.
_last_used: dict[int, datetime] = {}


def note_use(credential: Credential, now: datetime) -> None:
    noted = _last_used.get(credential.pk)
    if noted is not None and now - noted < LAST_USED_RESOLUTION:
        return
    Credential.objects.filter(pk=credential.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
    ).update(last_used_at=now)
    _last_used[credential.pk] = now
