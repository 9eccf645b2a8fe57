"""Who is asking: the client address behind trusted proxies, the allow-list, the refusal throttle,
and the security headers of every page.

- `client_address()` is the peer's address, or, when the peer is one of TRUSTED_PROXIES, the
  rightmost X-Forwarded-For entry that is not itself a trusted proxy. A header sent by anyone
  else changes nothing: not the allow-list decision, not the throttle key, not the stored address.
- `address_allowed()`: the optional allow-list (`AllowedNetwork` rows, edited in admin). No active
  row means every address may send.
- `RefusalThrottle`: refused postbacks (bad, missing or expired credential, address not allowed)
  are counted per client address in Django's cache (shared by every gunicorn worker: a database
  or file cache); past the rate the answer is 429 with Retry-After. A request carrying a valid
  credential never consults it, so impact.com's traffic is never throttled, even from an address
  that was refused many times (its ranges are shared with every other sender it serves).
- `SecurityHeadersMiddleware`: Content-Security-Policy (no inline scripts, frame-ancestors
  'none'); the other headers come from Django's SecurityMiddleware (nosniff, referrer policy,
  HSTS in production) and XFrameOptionsMiddleware.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from django.conf import settings
from django.core.cache import caches
from django.http import HttpRequest
from rest_framework.throttling import SimpleRateThrottle

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_ADDRESS_ATTRIBUTE = "_postbacks_client_address"


def parse_network(text: str) -> IPNetwork:
    """`203.0.113.0/24`, `2001:db8::/32` or a single address; host bits are ignored."""
    text = (text or "").strip()
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an IP address or a network in CIDR form (e.g. 203.0.113.0/24)") from exc


def parse_ip(text: str | None) -> IPAddress | None:
    """An address as proxies write it (`1.2.3.4`, `1.2.3.4:5678`, `[::1]:80`, `::ffff:1.2.3.4`); None if garbage."""
    text = (text or "").strip()
    if not text or len(text) > 64:
        return None
    candidates = [text]
    if text.startswith("[") and "]" in text:
        candidates.append(text[1 : text.index("]")])
    elif text.count(":") == 1:
        candidates.append(text.split(":")[0])
    for candidate in candidates:
        try:
            address = ipaddress.ip_address(candidate)
        except ValueError:
            continue
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            return address.ipv4_mapped
        return address
    return None


def in_networks(address: IPAddress | None, networks: Iterable[IPNetwork]) -> bool:
    return address is not None and any(address.version == n.version and address in n for n in networks)


def trusted_proxies() -> list[IPNetwork]:
    return [parse_network(cidr) for cidr in settings.TRUSTED_PROXIES]


def client_address(request: HttpRequest) -> str:
    """The address of whoever sent the request (see the module docstring); at most 64 characters."""
    cached = getattr(request, _ADDRESS_ATTRIBUTE, None)
    if cached is not None:
        return cached
    raw_peer = request.META.get("REMOTE_ADDR", "") or ""
    peer = parse_ip(raw_peer)
    address = peer
    proxies = trusted_proxies()
    if proxies and in_networks(peer, proxies):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        for hop in reversed(forwarded.split(",")[-50:] if forwarded else []):
            hop_address = parse_ip(hop)
            if hop_address is None:
                break  # garbage: the last address a trusted proxy vouched for stands
            address = hop_address
            if not in_networks(hop_address, proxies):
                break
    result = str(address) if address is not None else raw_peer[:64]
    setattr(request, _ADDRESS_ATTRIBUTE, result)
    return result


def scrub_credentials(request: HttpRequest, header_names: Iterable[str] | None = None, secret: str = "") -> None:
    """Once the credential has been read, blank it out of the request itself.

    Django's "django.request" log records, error reports and anything else that prints the
    request (its repr shows the full path with the query string, reports show every header) then
    never see it. The stored delivery is redacted separately (ingest.store).
    """
    from .ingest import REDACTED, TOKEN_PARAMETER
    from .models import Credential

    if header_names is None:
        header_names = set(Credential.objects.filter(active=True).values_list("header_name", flat=True))
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


def address_allowed(address: str, cidrs: Iterable[str]) -> bool:
    """True when the allow-list (the active networks' `cidrs`) is empty or contains the address."""
    if not cidrs:
        return True
    networks = []
    for cidr in cidrs:
        try:
            networks.append(parse_network(cidr))
        except ValueError:
            continue  # a row saved around validation never allows anything
    return in_networks(parse_ip(address), networks)


class RefusalThrottle(SimpleRateThrottle):
    """At most POSTBACK_REFUSAL_THROTTLE_RATE refused postbacks per client address.

    Consulted only after a request was refused, so valid credentials are never throttled.
    The rate and the cache are read at call time (tests and settings changes apply at once).
    """

    scope = "postback_refusals"

    def __init__(self):
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)

    @property
    def cache(self):
        return caches[settings.POSTBACK_THROTTLE_CACHE]

    def get_rate(self):
        return settings.POSTBACK_REFUSAL_THROTTLE_RATE or None

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": client_address(request)}


def refusal_throttled(request, view=None) -> float | None:
    """Count one refusal from this address; return the seconds to wait if it is over the rate."""
    throttle = RefusalThrottle()
    if throttle.rate is None:
        return None
    if throttle.allow_request(request, view):
        return None
    return max(1.0, throttle.wait() or 1.0)


class SecurityHeadersMiddleware:
    """Adds Content-Security-Policy (CONTENT_SECURITY_POLICY) to every response that has none."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        policy = settings.CONTENT_SECURITY_POLICY
        if policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy
        return response
