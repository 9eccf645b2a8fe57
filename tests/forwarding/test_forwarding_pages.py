"""The forwarding pages: endpoints with their health, an endpoint's attempts and messages (keyset
pages), a test message, replaying one message or every failed one since a time, and who may."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from events.forwarding import dispatch_all
from events.models import Attempt, Message


def failed_messages(send, receiver, count: int) -> list[Message]:
    receiver.behaviour = lambda body: "500"
    for n in range(count):
        send(action_id=f"F{n}")
    dispatch_all()
    Message.objects.update(status="failed", finished_at=timezone.now())
    receiver.behaviour = lambda body: "ok"
    return list(Message.objects.order_by("id"))


def test_the_list_shows_each_endpoints_success_rate_pending_and_failed(staff_client, send, endpoint, receiver):
    # By action, not by turn: the dispatcher sends different actions at once, in any order.
    receiver.behaviour = lambda body: "500" if json.loads(body)["data"]["action"]["id"] == "A1" else "ok"
    for n in range(4):
        send(action_id=f"A{n}")
    dispatch_all()
    Message.objects.filter(action__action_id="A3").update(status="failed")
    page = staff_client.get("/forwarding/")
    assert page.status_code == 200
    ((shown, health),) = page.context["rows"]
    assert shown == endpoint and (health.pending, health.failed) == (1, 1)
    assert (health.successes, health.attempts) == (3, 4)
    assert "75 %" in page.content.decode() and "(3 of 4 attempts)" in page.content.decode()


def test_the_endpoint_page_shows_its_last_attempts_paged_by_keyset(staff_client, send, endpoint, receiver):
    for n in range(55):
        send(action_id=f"A{n}")
    dispatch_all()
    first = staff_client.get(f"/forwarding/{endpoint.pk}/")
    body = first.content.decode()
    assert first.status_code == 200 and len(first.context["page"].rows) == 50
    assert "200" in body and " ms" in body and "ok xxxx" in body  # code, latency, the answer's start
    older = staff_client.get(f"/forwarding/{endpoint.pk}/", {"before": first.context["page"].older})
    rows = older.context["page"].rows
    assert len(rows) == 5 and {a.pk for a in rows}.isdisjoint(a.pk for a in first.context["page"].rows)
    assert len({a.pk for a in rows} | {a.pk for a in first.context["page"].rows}) == Attempt.objects.count()


def test_send_a_test_message_from_the_page(staff_client, endpoint, receiver):
    response = staff_client.post(f"/forwarding/{endpoint.pk}/test", follow=True)
    assert response.status_code == 200
    assert receiver.bodies[0]["type"] == "test" and receiver.bad_signatures == 0
    assert "Test message answered 200" in response.content.decode()


def test_replay_one_failed_message_with_its_webhook_id(staff_client, send, endpoint, receiver):
    first, second = failed_messages(send, receiver, 2)
    listed = staff_client.get(f"/forwarding/{endpoint.pk}/messages/", {"status": "failed"})
    assert [m.pk for m in listed.context["page"].rows] == [second.pk, first.pk]
    response = staff_client.post(f"/forwarding/{endpoint.pk}/messages/{first.pk}/replay", follow=True)
    assert "will be sent again" in response.content.decode()
    assert Message.objects.get(pk=second.pk).status == "failed"
    assert dispatch_all() == 1
    assert receiver.headers[0]["webhook-id"] == first.msg_id
    assert Message.objects.get(pk=first.pk).status == "delivered"


def test_replay_every_failed_message_since_a_time(staff_client, send, endpoint, receiver):
    old, *recent = failed_messages(send, receiver, 3)
    Message.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=2))
    since = (timezone.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    response = staff_client.post(f"/forwarding/{endpoint.pk}/replay-failed", {"since": since}, follow=True)
    assert "2 failed messages will be sent again." in response.content.decode()
    assert dispatch_all() == 2
    assert sorted(h["webhook-id"] for h in receiver.headers) == sorted(m.msg_id for m in recent)
    assert Message.objects.get(pk=old.pk).status == "failed"


@pytest.mark.parametrize("since", ["", "yesterday", "0001-01-01T00:00", "9999-12-31T23:59", "2026-13-01T00:00", "²"])
def test_a_replay_time_that_is_not_one_is_a_400_and_replays_nothing(staff_client, send, endpoint, receiver, since):
    failed_messages(send, receiver, 1)
    response = staff_client.post(f"/forwarding/{endpoint.pk}/replay-failed", {"since": since})
    assert response.status_code == 400 and b"YYYY-MM-DDTHH:MM" in response.content
    assert Message.objects.get().status == "failed"


def test_a_status_the_page_does_not_know_finds_no_message(staff_client, send, endpoint, receiver):
    failed_messages(send, receiver, 1)
    assert staff_client.get(f"/forwarding/{endpoint.pk}/messages/").context["page"].rows
    assert staff_client.get(f"/forwarding/{endpoint.pk}/messages/", {"status": "lost"}).context["page"].rows == []


def test_staff_without_the_permissions_see_the_pages_but_change_nothing(
    client, django_user_model, send, endpoint, receiver
):
    (message,) = failed_messages(send, receiver, 1)
    client.force_login(django_user_model.objects.create_user("staff", password="staff-no-perms-1", is_staff=True))
    page = client.get(f"/forwarding/{endpoint.pk}/messages/").content.decode()
    assert "Send again" not in page
    assert "Send a test message" not in client.get(f"/forwarding/{endpoint.pk}/").content.decode()
    assert client.post(f"/forwarding/{endpoint.pk}/messages/{message.pk}/replay").status_code == 403
    assert client.post(f"/forwarding/{endpoint.pk}/replay-failed", {"since": "2026-01-01T00:00"}).status_code == 403
    assert client.post(f"/forwarding/{endpoint.pk}/test").status_code == 403
    assert Message.objects.get().status == "failed" and receiver.bodies == []


def test_a_message_of_another_endpoint_is_not_found(staff_client, send, endpoint, receiver):
    (message,) = failed_messages(send, receiver, 1)
    assert staff_client.post(f"/forwarding/{endpoint.pk + 1}/messages/{message.pk}/replay").status_code == 404
