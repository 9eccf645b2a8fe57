"""The simulator's receiver of forwarded messages: signatures verified with `standardwebhooks`, each
`webhook-id` processed once, each action's order checked, and the comparison with the truth."""

from __future__ import annotations

import http.client
import json
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from events.forwarding import signing
from events.models import generate_signing_secret
from events.simulation.forwarded import ForwardReceiver, compare_forwarded
from events.simulation.world import Expected

AT = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


@pytest.fixture
def receiver():
    receiver = ForwardReceiver()
    receiver.secret = generate_signing_secret()
    receiver.start()
    yield receiver
    receiver.close()


def payload(action_id: str, sequence: int, status="PENDING", amount="100.00", state="tracked") -> str:
    action = {"id": action_id, "state": state, "status": status, "amount": amount, "payout": "10.00"}
    event = {"kind": state, "changed_at": AT.replace(hour=10 + sequence).isoformat(), "sequence": sequence}
    return json.dumps({"type": f"action.{state}", "data": {"action": action, "event": event}})


def post(receiver, body: str, msg_id: str, secret: str | None = None) -> int:
    headers = signing.headers([secret or receiver.secret], msg_id, datetime.now(UTC), body)
    connection = http.client.HTTPConnection("127.0.0.1", receiver.server.server_port, timeout=5)
    try:
        connection.request("POST", "/forwarded", body=body.encode(), headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


def expected(action_id: str, *changes) -> Expected:
    keys = tuple((status, Decimal(amount), Decimal("10.00"), AT.replace(hour=10 + n)) for n, status, amount in changes)
    last = changes[-1]
    state = "tracked" if len(changes) == 1 else "modified"
    return Expected(action_id, state, Decimal(last[2]), Decimal("10.00"), Counter(), keys)


def test_each_webhook_id_is_processed_once_and_a_bad_signature_is_refused(receiver, db):
    assert post(receiver, payload("A1", 1), "msg_1") == 200
    assert post(receiver, payload("A1", 1), "msg_1") == 200  # a resend: answered, not processed again
    assert post(receiver, payload("A2", 1), "msg_2", secret=generate_signing_secret()) == 400
    assert receiver.redelivered == 1 and receiver.bad_signatures == 1
    assert [p["data"]["event"]["sequence"] for p in receiver.changes["A1"]] == [1]
    report = compare_forwarded({"A1": expected("A1", (1, "PENDING", "100.00"))}, receiver)
    assert report.line().startswith("lost: 0, wrong: 1, duplicated: 0 (resent with the same webhook-id, ignored: 1)")
    assert report.differences == ["1 messages whose signature did not verify"]
    assert not report.ok


def test_out_of_order_and_duplicated_changes_are_reported(receiver, db):
    post(receiver, payload("A1", 2, amount="80.00", state="modified"), "msg_2")
    post(receiver, payload("A1", 1), "msg_1")
    post(receiver, payload("A1", 1), "msg_1b")  # the same change under a second webhook-id
    truth = {"A1": expected("A1", (1, "PENDING", "100.00"), (2, "PENDING", "80.00"))}
    report = compare_forwarded(truth, receiver)
    assert (report.lost, report.duplicated) == (0, 1)
    assert report.wrong == 2  # arrived out of order; and the last state forwarded is not the final one
    assert any("out of order" in line for line in report.differences)


def test_a_complete_stream_in_order_is_clean(receiver, db):
    post(receiver, payload("A1", 1), "msg_1")
    post(receiver, payload("A1", 2, amount="80.00", state="modified"), "msg_2")
    truth = {"A1": expected("A1", (1, "PENDING", "100.00"), (2, "PENDING", "80.00"))}
    report = compare_forwarded(truth, receiver)
    assert (
        report.ok and report.line() == "lost: 0, wrong: 0, duplicated: 0 (resent with the same webhook-id, ignored: 0)"
    )
