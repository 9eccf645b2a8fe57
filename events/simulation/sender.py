"""Play impact.com over real HTTP: a `world.Plan` sent with threads (one keep-alive connection per
thread, http.client), an optional rate limit, and impact.com's retry policy: any non-2xx answer or
connection error is retried, up to 15 attempts in all, with exponential backoff. No Django.
"""

from __future__ import annotations

import http.client
import json
import queue
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from .world import Plan, Send

MAX_ATTEMPTS = 15  # impact.com: up to 15 attempts in total
USER_AGENT = "impact-postback-simulator/1"


@dataclass
class Stats:
    sent: int = 0  # postbacks delivered (a 2xx answer was seen)
    interrupted: bool = False
    attempts: int = 0
    retries: int = 0
    errors: int = 0  # failed attempts (non-2xx or connection error), each retried
    gave_up: int = 0  # postbacks that failed 15 times
    outcomes: Counter = field(default_factory=Counter)
    error_kinds: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


class Target:
    """Where and how to send: URL, method and credential placement."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        method: str = "get",
        header: str = "X-Postback-Token",
        token_in: str = "header",  # noqa: S107 - where to put it, not a secret
    ):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"--url {url!r} is not an http(s) URL")
        self.url = url
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.path = parts.path or "/"
        self.base_query = parts.query
        self.method = method
        self.header = header
        self.token = token
        self.token_in = token_in

    def connect(self, timeout: float) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=timeout)

    def request(self, params: dict[str, str]) -> tuple[str, str, bytes | None, dict[str, str]]:
        """(method, path with query, body, headers) for one postback, filled like impact.com's templates."""
        headers = {"User-Agent": USER_AGENT}
        query = [self.base_query] if self.base_query else []
        if self.token_in == "query":
            query.append(urlencode({"token": self.token}))
        else:
            headers[self.header] = self.token
        if self.method == "post-json":
            body = json.dumps(params).encode()
            headers["Content-Type"] = "application/json"
            path = self.path + ("?" + "&".join(query) if query else "")
            return "POST", path, body, headers
        query.append(urlencode(params, safe="{}:"))
        return "GET", self.path + "?" + "&".join(query), None, headers


class Sender:
    def __init__(
        self,
        target: Target,
        params_for: Callable[[Send], dict[str, str]],
        *,
        concurrency: int = 4,
        rate: float = 0.0,
        backoff: float = 0.5,
        backoff_cap: float = 30.0,
        timeout: float = 30.0,
        progress=None,
    ):
        self.target = target
        self.params_for = params_for
        self.concurrency = max(1, concurrency)
        self.rate = rate
        self.backoff = backoff
        self.backoff_cap = backoff_cap
        self.timeout = timeout
        self.progress = progress
        # Set on SIGTERM/Ctrl-C: threads finish the attempt in flight, then stop.
        self.stopped = threading.Event()
        self.stats = Stats()
        self._lock = threading.Lock()
        self._next_slot = 0.0
        self._jitter = random.Random(0)

    # -- pacing ----------------------------------------------------------------------
    def _wait_for_slot(self, limited: bool) -> None:
        if not limited or self.rate <= 0:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + 1.0 / self.rate
        if slot > now:
            self.stopped.wait(slot - now)

    def _backoff(self, attempt: int) -> float:
        with self._lock:
            jitter = self._jitter.uniform(0.5, 1.0)
        return min(self.backoff_cap, self.backoff * 2 ** (attempt - 1)) * jitter

    def _count(self, **deltas) -> None:
        with self._lock:
            for name, value in deltas.items():
                setattr(self.stats, name, getattr(self.stats, name) + value)
        if self.progress is not None:
            self.progress(self.stats, deltas)

    # -- one postback ----------------------------------------------------------------
    def deliver(self, conn_holder: list, send: Send, limited: bool) -> None:
        method, path, body, headers = self.target.request(self.params_for(send))
        for attempt in range(1, MAX_ATTEMPTS + 1):
            self._wait_for_slot(limited)
            if self.stopped.is_set():
                return
            if attempt > 1:
                self._count(retries=1)
            error = None
            try:
                if conn_holder[0] is None:
                    conn_holder[0] = self.target.connect(self.timeout)
                conn = conn_holder[0]
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
                status = response.status
                if response.will_close:
                    conn.close()
                    conn_holder[0] = None
            except (OSError, http.client.HTTPException) as exc:
                status, payload = None, b""
                error = type(exc).__name__
                if conn_holder[0] is not None:
                    conn_holder[0].close()
                    conn_holder[0] = None
            self._count(attempts=1)
            if status is not None and 200 <= status < 300:
                if send.lost_ack and attempt == 1:
                    error = "lost acknowledgement (simulated)"
                else:
                    with self._lock:
                        self.stats.outcomes[_outcome(payload)] += 1
                    self._count(sent=1)
                    return
            error = error or f"HTTP {status}"
            with self._lock:
                self.stats.error_kinds[error] += 1
            self._count(errors=1)
            if attempt < MAX_ATTEMPTS:
                self.stopped.wait(0 if send.lost_ack and attempt == 1 else self._backoff(attempt))
        with self._lock:
            self.stats.failures.append(f"{send.change.action_id} change {send.change.index}: gave up ({error})")
        self._count(gave_up=1)

    # -- a whole plan ----------------------------------------------------------------
    def run(self, plan: Plan, on_pause: Callable[[float], None] | None = None) -> Stats:
        for number, wave in enumerate(plan.waves):
            if number and plan.maintenance and number == 1 and plan.pause:
                if on_pause:
                    on_pause(plan.pause)
                self.stopped.wait(plan.pause)
            if self.stopped.is_set():
                break
            # The backlog after a maintenance pause is a burst: sent as fast as possible.
            self._send_wave(wave, limited=not (plan.maintenance and number == 1))
        self.stats.interrupted = self.stopped.is_set()
        return self.stats

    def _send_wave(self, wave: list[Send], limited: bool) -> None:
        work: queue.Queue = queue.Queue()
        for send in wave:
            work.put(send)

        def worker():
            conn_holder = [None]
            try:
                while not self.stopped.is_set():
                    try:
                        send = work.get_nowait()
                    except queue.Empty:
                        return
                    self.deliver(conn_holder, send, limited)
            finally:
                if conn_holder[0] is not None:
                    conn_holder[0].close()

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(min(self.concurrency, len(wave)))]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(0.2)
        except KeyboardInterrupt:
            self.stop()
            for thread in threads:
                thread.join()

    def stop(self) -> None:
        self.stopped.set()


def _outcome(payload: bytes) -> str:
    try:
        return str(json.loads(payload).get("outcome", "unknown"))
    except (ValueError, AttributeError):
        return "unknown"


def wait_for_server(target: Target, seconds: float, sleep: Callable[[float], None] = time.sleep) -> bool:
    """Wait until something listens on the target's port (no request: nothing is logged as refused)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection((target.host, target.port), timeout=2).close()
            return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            sleep(0.25)
