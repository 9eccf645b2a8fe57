"""Where a message may go, and the HTTP call that takes it there.

A target must be https and resolve only to public addresses, checked at send time on the addresses
the name resolves to then; the connection goes to the checked address (so a name that resolves
differently a moment later cannot redirect it). `FORWARD_ALLOW_PRIVATE_TARGETS=true` lifts both
rules (plain http and private addresses), for tests and closed networks. Redirects are not followed.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

# The start of an answer's body that is kept with the attempt.
RESPONSE_EXCERPT_BYTES = 1024


class TargetRefused(Exception):
    """The URL is not a target this installation sends to."""


@dataclass
class Answer:
    status_code: int | None
    latency_ms: int
    excerpt: str = ""
    error: str = ""

    @property
    def success(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def resolve(url: str, allow_private: bool) -> tuple[str, str, int, str]:
    """(scheme, host, port, address to connect to) for `url`, or TargetRefused saying why."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme != "https" and not (allow_private and scheme == "http"):
        raise TargetRefused("only https URLs are allowed")
    if not parts.hostname:
        raise TargetRefused("the URL has no host")
    port = parts.port or (443 if scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise TargetRefused(f"cannot resolve {parts.hostname}: {exc}") from exc
    addresses = [info[4][0] for info in infos]
    if not allow_private:
        private = [a for a in addresses if not is_public(a)]
        if private:
            raise TargetRefused(f"{parts.hostname} resolves to a non-public address ({private[0]})")
    return scheme, parts.hostname, port, addresses[0]


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host, port, address, timeout):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host, port, address, timeout):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float, allow_private: bool) -> Answer:
    """POST `body` to `url`; never raises for network trouble: the answer says what happened."""
    started = time.monotonic()

    def elapsed() -> int:
        return round((time.monotonic() - started) * 1000)

    try:
        scheme, host, port, address = resolve(url, allow_private)
    except TargetRefused as exc:
        return Answer(None, elapsed(), error=f"refused: {exc}")
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection_class = _PinnedHTTPS if scheme == "https" else _PinnedHTTP
    connection = connection_class(host, port, address, timeout)
    try:
        connection.request("POST", path, body=body, headers={**headers, "user-agent": "impact-postbacks-forwarder"})
        response = connection.getresponse()
        excerpt = response.read(RESPONSE_EXCERPT_BYTES).decode("utf-8", "replace")
        return Answer(response.status, elapsed(), excerpt=excerpt.replace("\x00", ""))
    except TimeoutError:
        return Answer(None, elapsed(), error=f"no answer within {timeout:g} s")
    except (OSError, http.client.HTTPException) as exc:
        return Answer(None, elapsed(), error=f"{type(exc).__name__}: {exc}"[:500])
    finally:
        connection.close()
