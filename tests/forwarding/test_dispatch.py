"""Sending the outbox: signatures, order per action, retries, give-up, disabling, safety."""

from __future__ import annotations

import random
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from events.forwarding import dispatch_due, replay_failed, send_test
from events.forwarding.dispatch import BACKOFF, claim
from events.forwarding.targets import TargetRefused, resolve
from events.models import AlertKind, Attempt, DelayAlert, Endpoint, Message


def drain(now=None):
    now = now or timezone.now()
    total = 0
    while (sent := dispatch_due(now)) > 0:
        total += sent
    return total


def test_every_message_arrives_signed_with_standard_webhooks_headers(send, endpoint, receiver):
    send(action_id="A1")
    assert drain() == 1
    assert receiver.bad_signatures == 0 and len(receiver.bodies) == 1
    headers = receiver.headers[0]
    message = Message.objects.get()
    assert headers["webhook-id"] == message.msg_id
    assert headers["webhook-signature"].startswith("v1,")
    assert message.status == "delivered" and message.attempts == 1
    attempt = Attempt.objects.get()
    assert attempt.status_code == 200 and attempt.success
    assert len(attempt.response) == 1024  # the answer's body, truncated


def test_a_receiver_with_the_wrong_secret_refuses_and_the_message_is_retried(send, endpoint, receiver):
    receiver.secrets = ["whsec_" + "QUFB" * 8]
    send(action_id="A1")
    drain()
    assert receiver.bad_signatures == 1
    message = Message.objects.get()
    assert message.status == "pending" and message.attempts == 1
    assert message.next_attempt_at > timezone.now()


def test_during_a_rotation_both_secrets_sign_so_either_receiver_verifies(send, endpoint, receiver):
    old = endpoint.secret
    new = endpoint.rotate_secret()
    send(action_id="A1")
    send(action_id="A2")
    receiver.secrets = [old]
    dispatch_due(size=1)
    receiver.secrets = [new]
    dispatch_due(size=1)
    assert receiver.bad_signatures == 0 and len(receiver.bodies) == 2
    assert len(receiver.headers[0]["webhook-signature"].split(" ")) == 2
    endpoint.end_rotation()
    send(action_id="A3")
    receiver.secrets = [old]
    drain()
    assert receiver.bad_signatures == 1


def test_an_actions_next_change_waits_until_the_previous_one_is_acknowledged(send, endpoint, receiver):
    send(action_id="A1")
    send(action_id="A1", Status="REVERSED")
    send(action_id="B1")
    refused = set()

    def refuse_a1_once(body):
        if b'"id":"A1"' in body and not refused:
            refused.add(1)
            return "500"
        return "ok"

    receiver.behaviour = refuse_a1_once
    now = timezone.now()
    assert drain(now) == 2  # A1's tracked (refused) and B1's; A1's reversal waits behind it
    assert receiver.processed == {"B1": [1]}
    assert drain(now + timedelta(seconds=6)) == 2  # A1's tracked, then at once its reversal
    assert receiver.processed["A1"] == [1, 2] and not receiver.out_of_order


def test_retries_back_off_then_the_message_fails_after_three_days_with_an_alert(send, endpoint, receiver):
    receiver.behaviour = lambda body: "500"
    send(action_id="A1")
    message = Message.objects.get()
    now = message.next_attempt_at
    waits = []
    rng = random.Random(3)
    while Message.objects.get().status == "pending":
        dispatch_due(now, rng=rng)
        message = Message.objects.get()
        if message.status == "pending":
            waits.append(message.next_attempt_at - now)
            now = message.next_attempt_at
    for wait, base in zip(waits, [*BACKOFF, *[BACKOFF[-1]] * 10], strict=False):
        assert base <= wait <= base * 1.1
    assert message.status == "failed" and message.finished_at - message.first_attempt_at <= timedelta(days=3)
    assert message.attempts == len(waits) + 1 >= 10
    alert = DelayAlert.objects.get(kind=AlertKind.FORWARDING)
    assert alert.endpoint == endpoint and "1 messages failed" in alert.summary
    assert Endpoint.objects.get().active  # failing for 3 days, not 5


def test_an_endpoint_failing_for_five_days_is_disabled_with_an_alert(send, endpoint, receiver):
    receiver.behaviour = lambda body: "500"
    start = timezone.now()
    for day in range(6):
        send(action_id=f"A{day}")
        Message.objects.filter(status="pending").update(next_attempt_at=start + timedelta(days=day))
        dispatch_due(start + timedelta(days=day))
    endpoint.refresh_from_db()
    assert not endpoint.active and endpoint.disabled_at == start + timedelta(days=5)
    assert "disabled" in DelayAlert.objects.get(kind=AlertKind.FORWARDING, endpoint=endpoint).summary
    assert dispatch_due(start + timedelta(days=7)) == 0  # a disabled endpoint gets nothing


def test_a_success_ends_an_endpoints_failing_spell(send, endpoint, receiver):
    answers = iter(["500", "ok"])
    receiver.behaviour = lambda body: next(answers)
    send(action_id="A1")
    now = timezone.now()
    dispatch_due(now)
    assert Endpoint.objects.get().failing_since == now
    dispatch_due(now + timedelta(minutes=1))
    assert Endpoint.objects.get().failing_since is None


def test_failed_messages_since_a_time_can_be_replayed_with_the_same_webhook_id(send, endpoint, receiver):
    send(action_id="A1")
    Message.objects.update(status="failed")
    assert replay_failed(endpoint, timezone.now() - timedelta(hours=1)) == 1
    drain()
    assert receiver.headers[0]["webhook-id"] == Message.objects.get().msg_id
    assert Message.objects.get().status == "delivered"


def test_a_test_message_is_sent_at_once(endpoint, receiver):
    attempt = send_test(endpoint)
    assert attempt.success and receiver.bodies[0]["type"] == "test"


def test_a_claimed_message_is_not_claimed_again_by_another_dispatcher(send, endpoint):
    send(action_id="A1")
    now = timezone.now()
    assert len(claim(now)) == 1
    assert claim(now) == []


def test_dispatch_webhooks_once_sends_everything_due_and_exits(send, endpoint, receiver):
    for n in range(3):
        send(action_id="A1" if n < 2 else "B1", Status="REVERSED" if n == 1 else None)
    out = StringIO()
    call_command("dispatch_webhooks", "--once", stdout=out)
    assert out.getvalue().strip() == "Sent 3 messages; 0 due still."
    assert receiver.processed == {"A1": [1, 2], "B1": [1]}


def test_only_https_to_public_addresses_unless_private_targets_are_allowed():
    with pytest.raises(TargetRefused, match="only https"):
        resolve("http://example.com/hook", allow_private=False)
    for url in ("https://127.0.0.1/h", "https://10.1.2.3/h", "https://169.254.169.254/h", "https://[::1]/h"):
        with pytest.raises(TargetRefused, match="non-public"):
            resolve(url, allow_private=False)
    assert resolve("http://127.0.0.1:9/h", allow_private=True)[3] == "127.0.0.1"


def test_a_private_target_is_refused_at_send_time_and_retried(send, endpoint, settings):
    settings.FORWARD_ALLOW_PRIVATE_TARGETS = False
    send(action_id="A1")
    dispatch_due()
    attempt = Attempt.objects.get()
    assert attempt.status_code is None and attempt.error.startswith("refused: only https")
    assert Message.objects.get().status == "pending"


def test_add_endpoint_prints_the_secret_alone_on_its_last_line(db):
    out = StringIO()
    call_command("add_endpoint", "--url", "https://example.com/h", "--kinds", "tracked,reversed", stdout=out)
    endpoint = Endpoint.objects.get()
    assert out.getvalue().splitlines()[-1] == endpoint.secret and endpoint.secret.startswith("whsec_")
    assert endpoint.kinds == ["tracked", "reversed"]
