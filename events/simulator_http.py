"""Play impact.com over real HTTP, then compare the receiver's state with the simulated truth.

`Sender` sends a `simulator.Plan` with threads (one keep-alive connection per
thread, http.client), an optional rate limit, and impact.com's retry policy:
any non-2xx answer or connection error is retried, up to 15 attempts in all,
with exponential backoff. `read_state_orm()` / `read_state_http()` read what
the receiver stored; `compare()` lists what differs from `simulator.truth()`.
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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from urllib.parse import urlencode, urlsplit

from .simulator import REVERSED, TRACKED, Expected, Plan, Send

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


# --- Reading the receiver's state ----------------------------------------------------------


def read_state_orm(action_ids: Iterable[str]) -> dict[str, dict]:
    """The receiver's actions and histories, straight from the database (same project)."""
    from .models import Action
    from .state_api import action_state

    ids = list(action_ids)
    state: dict[str, dict] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for action in Action.objects.filter(action_id__in=chunk).prefetch_related("events"):
            state[action.action_id] = action_state(action)
    return state


def read_state_http(api_url: str, token: str, header: str, action_ids: Iterable[str], timeout: float = 30) -> dict:
    """The same, through `GET /api/actions/?ids=...` (staff session or a credential in its header)."""
    target = Target(api_url, token, header=header)
    ids = list(action_ids)
    state: dict[str, dict] = {}
    conn = target.connect(timeout)
    try:
        for start in range(0, len(ids), 100):
            query = urlencode({"ids": ",".join(ids[start : start + 100])})
            conn.request("GET", f"{target.path}?{query}", headers={header: token, "Accept": "application/json"})
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"{api_url} answered {response.status}: {body[:300]!r}")
            for item in json.loads(body)["actions"]:
                state[item["action_id"]] = item
    finally:
        conn.close()
    return state


# --- Comparing ------------------------------------------------------------------------------


@dataclass
class Report:
    lost: int = 0  # changes the receiver has no event for (missing actions count all theirs)
    wrong: int = 0  # actions whose state, money or history differ
    duplicated: int = 0  # events recorded more than once for the same change
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.wrong or self.duplicated)

    def line(self) -> str:
        return f"lost: {self.lost}, wrong: {self.wrong}, duplicated: {self.duplicated}"


def _dec(value) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))


def expected_transitions(kinds: list[str]) -> list[tuple[str, str]]:
    """(from_state, to_state) of each event, in the receiver's arrival order (lifecycle rules)."""
    state, result = "", []
    for kind in kinds:
        if not state:
            new = kind
        elif state == REVERSED or kind == REVERSED:
            new = REVERSED
        elif kind == TRACKED:
            new = state
        else:
            new = "modified"
        result.append((state, new))
        state = new
    return result


def compare(expected: dict[str, Expected], actual: dict[str, dict]) -> Report:
    report = Report()

    def differ(text: str) -> None:
        report.differences.append(text)

    for action_id, want in expected.items():
        got = actual.get(action_id)
        if got is None:
            report.lost += len(want.changes)
            differ(f"{action_id}: missing ({len(want.changes)} changes lost)")
            continue
        events = got["events"]
        remaining = Counter(want.changes)
        seen: Counter = Counter()
        wrong = []
        for event in events:
            changed_at = datetime.fromisoformat(event["changed_at"]) if event["changed_at"] else None
            key = (event["status"], _dec(event["amount"]), _dec(event["payout"]), changed_at)
            if remaining[key]:
                remaining[key] -= 1
                seen[key] += 1
            elif seen[key]:
                report.duplicated += 1
                differ(f"{action_id}: event #{event['seq']} repeats the change of {key[3]} ({key[0]})")
            else:
                wrong.append(f"event #{event['seq']} reports a change that never happened: {key}")
        for key, count in remaining.items():
            if count:
                report.lost += count
                differ(f"{action_id}: no event for the change of {key[3]} ({key[0]} {key[1]}/{key[2]})")
        if (got["state"], _dec(got["amount"]), _dec(got["payout"])) != (want.state, want.amount, want.payout):
            wrong.append(
                f"is {got['state']} {got['amount']}/{got['payout']}, expected {want.state} {want.amount}/{want.payout}"
            )
        kinds = Counter(event["kind"] for event in events)
        if kinds != want.kinds and not any(remaining.values()) and len(events) == len(want.changes):
            wrong.append(f"event kinds {dict(kinds)}, expected {dict(want.kinds)}")
        transitions = expected_transitions([event["kind"] for event in events])
        for event, (from_state, to_state) in zip(events, transitions, strict=True):
            if (event["from_state"], event["to_state"]) != (from_state, to_state):
                wrong.append(
                    f"event #{event['seq']} ({event['kind']}) goes {event['from_state'] or '-'} -> "
                    f"{event['to_state']}, expected {from_state or '-'} -> {to_state}"
                )
        if wrong:
            report.wrong += 1
            differ(f"{action_id}: " + "; ".join(wrong))
    return report


# --- Demo: receive times as impact.com would have sent them --------------------------------


def backdate(world, plan: Plan) -> int:
    """Move receive times of the world's events (and deliveries) back to their planned sending time.

    The postbacks of a month of history all go out now; for the demo dashboard they are
    moved back to when impact.com would have sent each one, delays recomputed. Only
    receive times change: states, money and histories are as the receiver made them.
    """
    from django.db import transaction

    from . import rollups
    from .models import Action, ActionEvent, Delivery

    planned: dict[tuple[str, datetime], list[datetime]] = {}
    for send in plan.sends:
        planned.setdefault((send.change.action_id, send.change.at), []).append(send.send_at)
    ids = [action.action_id for action in world.actions]
    moved = 0
    moved_ids: list[int] = []
    with transaction.atomic():
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            events = list(ActionEvent.objects.filter(action__action_id__in=chunk).select_related("action"))
            deliveries: dict[int, list] = {}
            for delivery in Delivery.objects.filter(event__in=events).order_by("id"):
                deliveries.setdefault(delivery.event_id, []).append(delivery)
            changed_events, changed_deliveries = [], []
            for event in events:
                times = sorted(planned.get((event.action.action_id, event.changed_at), []))
                if not times or times[0] >= event.received_at:
                    continue
                event.received_at = times[0]
                event.delay_seconds = int((times[0] - event.changed_at).total_seconds())
                changed_events.append(event)
                for delivery, at in zip(deliveries.get(event.pk, []), times + [times[-1]] * 20, strict=False):
                    delivery.received_at = at
                    changed_deliveries.append(delivery)
            ActionEvent.objects.bulk_update(changed_events, ["received_at", "delay_seconds"], batch_size=500)
            Delivery.objects.bulk_update(changed_deliveries, ["received_at"], batch_size=500)
            moved += len(changed_events)
            moved_ids += [event.pk for event in changed_events]
            for action in Action.objects.filter(action_id__in=chunk).prefetch_related("events"):
                received = [event.received_at for event in action.events.all()]
                if received:
                    action.first_received_at, action.last_received_at = min(received), max(received)
                    action.save(update_fields=["first_received_at", "last_received_at"])
        _forget_late_alerts_of_backdated(moved_ids)
        rollups.forget()  # the moved rows now belong to days the overview may have counted
    return moved


def _forget_late_alerts_of_backdated(event_ids: list[int]) -> None:
    """Sent now, a month of history opened late alerts at ingest; backdated, those postbacks were on time.

    Their alert items go, and late alerts left without items are deleted (the demo's genuinely
    late postbacks keep theirs).
    """
    from django.conf import settings
    from django.utils import timezone

    from .delays import _recount
    from .models import AlertItem, AlertKind, DelayAlert

    limit = settings.DELAY_ALERT_AFTER_MINUTES * 60
    items = AlertItem.objects.filter(event_id__in=event_ids, event__delay_seconds__lte=limit)
    alert_ids = list(items.values_list("alert_id", flat=True).distinct())
    items.delete()
    DelayAlert.objects.filter(pk__in=alert_ids, kind=AlertKind.LATE, items__isnull=True).delete()
    _recount(alert_ids, timezone.now())
