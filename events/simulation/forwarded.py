"""The forwarded stream, verified: a local receiver registered as a forwarding endpoint for the run,
and the comparison of what it received with what the simulator sent.

The receiver does what a publisher's should: it verifies every signature with the `standardwebhooks`
library, processes each `webhook-id` once (a resend of one already processed is only counted), and
checks that each action's changes arrive in order (`sequence` rising). Afterwards every change the
simulator sent must have arrived once, unless the receiver's history shows it changed nothing
(a superseded or otherwise unapplied entry is, by design, not forwarded); each action's last
forwarded state must be its true final state.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook

from events.forwarding import dispatch_all
from events.models import KINDS, ActionEvent, Endpoint, MessageStatus

from .verify import Report
from .world import Expected

DESCRIPTION = "simulate_postbacks --verify-forwarding"


class ForwardReceiver:
    """A threaded http.server on 127.0.0.1 that receives the forwarded messages."""

    def __init__(self):
        self.secret = ""
        self.endpoint: Endpoint | None = None
        self.lock = threading.Lock()
        self.seen: Counter[str] = Counter()  # webhook-id -> deliveries
        self.changes: dict[str, list[dict]] = defaultdict(list)  # action id -> processed payloads, in arrival order
        self.bad_signatures = 0
        self.out_of_order: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = receiver.receive(body, dict(self.headers.items()))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/forwarded"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def redelivered(self) -> int:
        """Resends of a webhook-id already processed (expected after a lost answer; ignored)."""
        return sum(n - 1 for n in self.seen.values())

    def receive(self, body: bytes, headers: dict[str, str]) -> int:
        headers = {name.lower(): value for name, value in headers.items()}
        try:
            payload = Webhook(self.secret).verify(body, headers)
        except Exception:  # whatever the library raises, the signature does not verify
            with self.lock:
                self.bad_signatures += 1
            return 400
        msg_id = headers["webhook-id"]
        with self.lock:
            self.seen[msg_id] += 1
            if self.seen[msg_id] > 1 or not str(payload.get("type", "")).startswith("action."):
                return 200
            action_id = payload["data"]["action"]["id"]
            done = self.changes[action_id]
            if done and done[-1]["data"]["event"]["sequence"] >= payload["data"]["event"]["sequence"]:
                self.out_of_order.append(action_id)
            done.append(payload)
        return 200

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def register(receiver: ForwardReceiver) -> Endpoint:
    """The receiver as an endpoint of every kind; its secret given to the receiver."""
    endpoint = Endpoint.objects.create(url=receiver.url, description=DESCRIPTION, kinds=list(KINDS))
    receiver.secret, receiver.endpoint = endpoint.secret, endpoint
    return endpoint


def forward_everything(endpoint: Endpoint, timeout: float, sleep: Callable[[float], None] = time.sleep) -> int:
    """Send the endpoint's messages (a dispatcher running meanwhile shares the work) until none is
    pending, up to `timeout` seconds; the number still pending."""
    deadline = time.monotonic() + timeout
    pending = endpoint.messages.filter(status=MessageStatus.PENDING)
    while True:
        sent = dispatch_all()
        left = pending.count()
        if not left or time.monotonic() >= deadline:
            return left
        if not sent:
            sleep(0.2)


def _key(payload: dict) -> tuple:
    """The change a message carries, as the truth writes it: (status, amount, payout, changed_at)."""
    action, event = payload["data"]["action"], payload["data"]["event"]
    changed_at = datetime.fromisoformat(event["changed_at"]) if event["changed_at"] else None
    return (action["status"], _dec(action["amount"]), _dec(action["payout"]), changed_at)


def _dec(value) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))


def unapplied_changes(action_ids) -> dict[str, Counter]:
    """Per action, the changes the receiver recorded without applying them (not forwarded)."""
    found: dict[str, Counter] = defaultdict(Counter)
    rows = ActionEvent.objects.filter(action__action_id__in=list(action_ids), applied=False)
    for action_id, status, amount, payout, changed_at in rows.values_list(
        "action__action_id", "status", "amount", "payout", "changed_at"
    ):
        found[action_id][(status, amount, payout, changed_at)] += 1
    return found


@dataclass
class ForwardedReport(Report):
    redelivered: int = 0
    bad_signatures: int = 0
    still_pending: int = 0

    def line(self) -> str:
        extra = f" (resent with the same webhook-id, ignored: {self.redelivered})"
        if self.bad_signatures:
            extra += f", bad signatures: {self.bad_signatures}"
        if self.still_pending:
            extra += f", still pending: {self.still_pending}"
        return super().line() + extra

    @property
    def ok(self) -> bool:
        return super().ok and not self.bad_signatures and not self.still_pending


def compare_forwarded(expected: dict[str, Expected], receiver: ForwardReceiver, still_pending: int = 0):
    """lost / wrong / duplicated for the forwarded stream, against the simulated truth."""
    report = ForwardedReport(
        redelivered=receiver.redelivered, bad_signatures=receiver.bad_signatures, still_pending=still_pending
    )
    report.wrong += receiver.bad_signatures
    if receiver.bad_signatures:
        report.differences.append(f"{receiver.bad_signatures} messages whose signature did not verify")
    unapplied = unapplied_changes(expected)
    for action_id in sorted(set(receiver.changes) - set(expected)):
        report.wrong += 1
        report.differences.append(f"{action_id}: forwarded, but the simulator never sent it")
    for action_id, want in expected.items():
        _compare_action(report, action_id, want, receiver.changes.get(action_id, []), unapplied[action_id])
        if action_id in receiver.out_of_order:
            report.wrong += 1
            report.differences.append(f"{action_id}: changes arrived out of order")
    return report


def _compare_action(report: ForwardedReport, action_id: str, want: Expected, got: list[dict], unapplied: Counter):
    remaining, seen = Counter(want.changes), Counter()
    wrong = []
    for payload in got:
        key = _key(payload)
        if remaining[key]:
            remaining[key] -= 1
            seen[key] += 1
        elif seen[key]:
            report.duplicated += 1
            report.differences.append(f"{action_id}: the change of {key[3]} ({key[0]}) arrived under two webhook-ids")
        else:
            wrong.append(f"message #{payload['data']['event']['sequence']} carries a change that never happened: {key}")
    for key, count in remaining.items():
        lost = count - min(count, unapplied[key])
        if lost:
            report.lost += lost
            report.differences.append(f"{action_id}: the change of {key[3]} ({key[0]}) was not forwarded")
    if got:
        last = got[-1]["data"]["action"]
        final = (last["state"], _dec(last["amount"]), _dec(last["payout"]))
        if final != (want.state, want.amount, want.payout):
            wrong.append(f"last forwarded as {final}, expected {(want.state, want.amount, want.payout)}")
    if wrong:
        report.wrong += 1
        report.differences.append(f"{action_id}: " + "; ".join(wrong))


def deactivate(endpoint: Endpoint) -> None:
    """The run's endpoint takes no more messages once the run is over (its page keeps its history)."""
    Endpoint.objects.filter(pk=endpoint.pk).update(active=False, disabled_reason=f"{DESCRIPTION} run finished")
