"""Who is asking: the client address behind trusted proxies, and network lists.

- `client_address()` is the peer's address, or, when the peer is one of TRUSTED_PROXIES, the
  rightmost X-Forwarded-For entry that is not itself a trusted proxy. A header sent by anyone
  else changes nothing: not the allow-list decision, not the throttle key, not the stored address.
- `address_allowed()`: the optional allow-list (`AllowedNetwork` rows, edited in admin). No active
  row means every address may send.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from django.conf import settings
from django.http import HttpRequest

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
