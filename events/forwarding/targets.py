"""Where a message may go, and the HTTP call that takes it there.

A target must be https and resolve only to public addresses, checked at send time on the addresses
the name resolves to then; the connection goes to the checked address (so a name that resolves
differently a moment later cannot redirect it). `FORWARD_ALLOW_PRIVATE_TARGETS=true` lifts both
rules (plain http and private addresses), for tests and closed networks. Redirects are not followed.

Speed: a name's check is remembered for `RESOLVE_TTL_SECONDS` (every send still goes through the
check, only the lookup is not repeated for each message), and connections are kept alive and reused,
pooled per checked address: a name that now resolves elsewhere gets new connections to the new,
checked address. A reused connection the receiver had closed while idle fails without an answer; the
request is then made once more on a fresh connection, as HTTP clients do (the unchanged `webhook-id`
makes a repeat harmless); any other failure is the attempt's answer.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

# The start of an answer's body that is kept with the attempt.
RESPONSE_EXCERPT_BYTES = 1024
# What is read past the excerpt so the connection can carry the next message; a longer answer closes it.
DRAIN_BYTES = 64 * 1024
# How long a name's resolved and checked addresses are used before it is looked up again.
RESOLVE_TTL_SECONDS = 10.0
# Idle connections kept per target address.
IDLE_PER_TARGET = 32


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
    return scheme, parts.hostname, port, _checked_address(parts.hostname, port, allow_private)


# The clock of the remembered checks (tests move it by hand).
clock = time.monotonic
_resolved: dict[tuple[str, int, bool], tuple[float, str, str]] = {}
_resolved_lock = threading.Lock()


def _checked_address(host: str, port: int, allow_private: bool) -> str:
    """The address to connect to for `host`, checked; the answer (or refusal) is kept a few seconds."""
    key, now = (host, port, allow_private), clock()
    with _resolved_lock:
        known = _resolved.get(key)
    if known is None or known[0] <= now:
        address, refusal = _lookup(host, port, allow_private)
        known = (now + RESOLVE_TTL_SECONDS, address, refusal)
        with _resolved_lock:
            _resolved[key] = known
    if known[2]:
        raise TargetRefused(known[2])
    return known[1]


def _lookup(host: str, port: int, allow_private: bool) -> tuple[str, str]:
    """(address, "") or ("", why it is refused)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return "", f"cannot resolve {host}: {exc}"
    addresses = [info[4][0] for info in infos]
    if not addresses:
        return "", f"{host} resolves to no address"
    if not allow_private:
        private = [a for a in addresses if not is_public(a)]
        if private:
            return "", f"{host} resolves to a non-public address ({private[0]})"
    return addresses[0], ""


def forget_resolved() -> None:
    """Drop every remembered lookup (the next send looks each name up again)."""
    with _resolved_lock:
        _resolved.clear()


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


class _Idle:
    """Idle keep-alive connections, per (scheme, host, port, checked address, timeout)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.connections: dict[tuple, list[http.client.HTTPConnection]] = {}

    def take(self, key: tuple) -> http.client.HTTPConnection | None:
        with self.lock:
            free = self.connections.get(key)
            return free.pop() if free else None

    def give(self, key: tuple, connection: http.client.HTTPConnection) -> None:
        with self.lock:
            free = self.connections.setdefault(key, [])
            if len(free) < IDLE_PER_TARGET:
                free.append(connection)
                return
        connection.close()

    def close_all(self) -> None:
        with self.lock:
            every = [c for free in self.connections.values() for c in free]
            self.connections.clear()
        for connection in every:
            connection.close()


_idle = _Idle()
close_idle_connections = _idle.close_all
# A reused connection the receiver closed while it was idle fails in one of these ways before any answer.
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


def _exchange(connection: http.client.HTTPConnection, path: str, body: bytes, headers: dict) -> tuple[int, str, bool]:
    """(status, excerpt of the body, whether the connection can carry another request)."""
    connection.request("POST", path, body=body, headers={**headers, "user-agent": "impact-postbacks-forwarder"})
    response = connection.getresponse()
    excerpt = response.read(RESPONSE_EXCERPT_BYTES).decode("utf-8", "replace")
    if not response.isclosed():
        response.read(DRAIN_BYTES)
    reusable = response.isclosed() and not response.will_close
    return response.status, excerpt.replace("\x00", ""), reusable


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
    key = (scheme, host, port, address, timeout)
    connection = _idle.take(key)
    reused = connection is not None
    if connection is None:
        connection = (_PinnedHTTPS if scheme == "https" else _PinnedHTTP)(host, port, address, timeout)
    reusable = False
    try:
        try:
            status, excerpt, reusable = _exchange(connection, path, body, headers)
        except _STALE:
            if not reused:
                raise
            connection.close()
            connection = (_PinnedHTTPS if scheme == "https" else _PinnedHTTP)(host, port, address, timeout)
            status, excerpt, reusable = _exchange(connection, path, body, headers)
        return Answer(status, elapsed(), excerpt=excerpt)
    except TimeoutError:
        return Answer(None, elapsed(), error=f"no answer within {timeout:g} s")
    except (OSError, http.client.HTTPException) as exc:
        return Answer(None, elapsed(), error=f"{type(exc).__name__}: {exc}"[:500])
    finally:
        if reusable:
            _idle.give(key, connection)
        else:
            connection.close()
