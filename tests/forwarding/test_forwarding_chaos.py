"""Chaos: postbacks in any order with duplicates, a receiver that answers 500, times out or drops
the connection at random; once it recovers, every change has arrived once, in order per action."""

from __future__ import annotations

import random
from datetime import timedelta
from urllib.parse import urlencode

from django.utils import timezone

from events.forwarding import dispatch_due
from events.models import ActionEvent, Message
from events.processing import process_next_batch
from tests.conftest import ENDPOINT, postback_params


def test_every_change_arrives_once_in_order_per_action_whatever_the_faults(
    client, credential, endpoint, receiver, settings
):
    settings.FORWARD_TIMEOUT_SECONDS = 0.3
    rng = random.Random(16)
    postbacks = []
    for n in range(25):
        action = f"C{n}"
        postbacks.append(postback_params(action_id=action))
        postbacks.append(
            postback_params(action_id=action, Amount="80.00", DeltaAmount="-20.00", UpdateDate="2026-11-22T10:00:00Z")
        )
        if n % 3 == 0:
            postbacks.append(postback_params(action_id=action, Status="REVERSED", UpdateDate="2026-11-24T10:00:00Z"))
    postbacks += rng.sample(postbacks, 20)  # impact.com's retries
    rng.shuffle(postbacks)

    receiver.behaviour = lambda body: rng.choice(["ok", "500", "500", "timeout", "drop", "late"])
    now = timezone.now()
    for start in range(0, len(postbacks), 7):  # postbacks keep arriving while the receiver misbehaves
        for params in postbacks[start : start + 7]:
            client.get(ENDPOINT + "?" + urlencode(params), headers={credential.header_name: credential.secret})
        process_next_batch(rng.randint(1, 7))
        dispatch_due(now)
        now += timedelta(seconds=6)
    while process_next_batch(50):
        pass
    for _ in range(5):  # still failing for a while
        dispatch_due(now)
        now += timedelta(minutes=6)
    receiver.behaviour = lambda body: "ok"  # it recovers
    for _ in range(20):
        now += timedelta(hours=11)  # past any backoff
        while dispatch_due(now):
            pass
    changes = ActionEvent.objects.filter(applied=True)
    expected = {}
    for event in changes.order_by("seq"):
        expected.setdefault(event.action.action_id, []).append(event.seq)
    assert Message.objects.filter(status="delivered").count() == Message.objects.count() == changes.count()
    assert dict(receiver.processed) == expected  # each webhook-id processed once, in order per action
    assert receiver.out_of_order == [] and receiver.bad_signatures == 0
    assert receiver.duplicates > 0  # answers too late were resent with the same webhook-id, and ignored
