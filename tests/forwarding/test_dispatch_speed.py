"""What makes the dispatcher fast without giving up its guarantees: kept-alive connections, a
name's check remembered a few seconds, and overlapping batches that still keep each action's order."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from django.utils import timezone

from events.forwarding import dispatch_all, targets
from events.forwarding.dispatch import claim
from events.forwarding.targets import TargetRefused, resolve
from events.models import Attempt, Message


@pytest.fixture(autouse=True)
def fresh_targets():
    targets.forget_resolved()
    targets.close_idle_connections()
    yield
    targets.close_idle_connections()


def test_overlapping_batches_deliver_every_change_once_in_order_per_action(send, endpoint, receiver):
    for n in range(6):
        send(action_id=f"A{n}")
        send(action_id=f"A{n}", Amount="80.00", DeltaAmount="-20.00", UpdateDate="2026-11-22T10:00:00Z")
        send(action_id=f"A{n}", Status="REVERSED", UpdateDate="2026-11-24T10:00:00Z")
    assert dispatch_all(size=4) == 18  # batches of 4: several overlap, and each action's changes follow each other
    assert receiver.processed == {f"A{n}": [1, 2, 3] for n in range(6)}
    assert receiver.out_of_order == [] and receiver.duplicates == 0 and receiver.bad_signatures == 0
    assert set(Message.objects.values_list("status", flat=True)) == {"delivered"}


def test_messages_share_kept_alive_connections(send, endpoint, receiver, settings):
    settings.FORWARD_CONCURRENCY = 2
    for n in range(20):
        send(action_id=f"A{n}")
    assert dispatch_all() == 20
    assert len(receiver.bodies) == 20
    assert 1 <= len(receiver.sockets) <= 2  # one per sending thread, not one per message


def test_a_connection_the_receiver_closed_while_idle_is_replaced_within_the_attempt(send, endpoint, receiver):
    send(action_id="A1")
    dispatch_all()
    receiver.hang_up()
    send(action_id="B1")
    dispatch_all()
    attempt = Attempt.objects.get(message__action__action_id="B1")
    assert attempt.success and Message.objects.get(action__action_id="B1").attempts == 1
    assert len(receiver.sockets) == 2


def test_a_timed_out_connection_is_not_reused(send, endpoint, receiver, settings):
    settings.FORWARD_TIMEOUT_SECONDS = 0.2
    answers = iter(["timeout", "ok"])
    receiver.behaviour = lambda body: next(answers)
    send(action_id="A1")
    dispatch_all()
    receiver.release.set()
    Message.objects.update(next_attempt_at=timezone.now())
    dispatch_all()
    assert [a.success for a in Attempt.objects.order_by("id")] == [False, True]
    assert len(receiver.sockets) == 2  # the second attempt did not read the first one's late answer


def test_a_names_check_is_remembered_briefly_then_made_again(monkeypatch):
    answers = {"hooks.example.com": ["93.184.216.34"]}
    lookups = []

    def getaddrinfo(host, port, *args, **kwargs):
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answers[host]]

    now = [1000.0]
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(targets, "clock", lambda: now[0])
    for _ in range(3):
        assert resolve("https://hooks.example.com/h", allow_private=False)[3] == "93.184.216.34"
    assert lookups == ["hooks.example.com"]
    answers["hooks.example.com"] = ["10.0.0.7"]  # the name now points inside
    now[0] += targets.RESOLVE_TTL_SECONDS - 1
    assert resolve("https://hooks.example.com/h", allow_private=False)[3] == "93.184.216.34"  # still remembered
    now[0] += 1
    with pytest.raises(TargetRefused, match="non-public address"):
        resolve("https://hooks.example.com/h", allow_private=False)
    assert len(lookups) == 2


def test_a_claim_holds_while_its_batch_and_the_one_ahead_could_all_time_out(send, endpoint, settings):
    settings.FORWARD_CONCURRENCY, settings.FORWARD_TIMEOUT_SECONDS = 2, 10
    for n in range(20):
        send(action_id=f"A{n}")
    now = timezone.now()
    claimed = claim(now, size=20)
    # Two batches of 20 on 2 threads, each call waiting 10 s: 200 s before the last one is done.
    assert len(claimed) == 20
    assert Message.objects.filter(claimed_until__gte=now + timedelta(seconds=200)).count() == 20
