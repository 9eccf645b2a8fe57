"""The outbox: a message per change and per subscribed endpoint, written with the change."""

from __future__ import annotations

import pytest

from events.models import ActionEvent, Delivery, Endpoint, Message
from tests.conftest import postback_params
from tests.forwarding.conftest import body_of


@pytest.fixture
def every_kind(db):
    return Endpoint.objects.create(url="https://example.com/all")


def test_a_tracked_action_writes_one_message_with_the_action_and_its_event(send, every_kind):
    send(action_id="A1", SubId1="member-7", Oid="order-9")
    message = Message.objects.get()
    body = body_of(message)
    assert message.endpoint == every_kind
    assert message.msg_id.startswith("msg_")
    assert body["type"] == "action.tracked"
    action, event = body["data"]["action"], body["data"]["event"]
    assert action["id"] == "A1"
    assert action["brand"] == {"campaign_id": "1001", "name": "Acme Shoes"}
    assert (action["amount"], action["payout"], action["currency"]) == ("100.00", "10.00", "USD")
    assert action["sub_ids"][0] == "member-7" and action["order_id"] == "order-9"
    assert action["dates"]["creation"] == "2026-11-20T14:03:11-08:00"
    assert event["kind"] == "tracked" and event["from_state"] == "" and event["to_state"] == "tracked"
    assert event["sequence"] == 1 and event["changes"]["amount"][0] is None


def test_each_message_carries_the_action_as_its_own_change_left_it_even_within_one_batch(store, every_kind):
    from events.processing import process_pending

    store(action_id="A1")
    store(action_id="A1", Amount="80.00", DeltaAmount="-20.00", UpdateDate="2026-11-22T10:00:00Z")
    process_pending()
    first, second = (body_of(m) for m in Message.objects.order_by("seq"))
    assert (first["data"]["action"]["amount"], second["data"]["action"]["amount"]) == ("100.00", "80.00")
    assert second["type"] == "action.modified" and second["data"]["event"]["from_state"] == "tracked"


def test_duplicates_and_superseded_entries_write_no_message(send, every_kind):
    send(action_id="A1")
    send(action_id="A1")  # impact.com's retry
    send(action_id="A1", Status="REVERSED", UpdateDate="2026-11-23T10:00:00Z")
    late = send(action_id="A1", Amount="90.00", DeltaAmount="-10.00", UpdateDate="2026-11-22T10:00:00Z")
    assert late.delivery.event.superseded and not late.delivery.event.applied
    assert ActionEvent.objects.count() == 3
    assert [body_of(m)["type"] for m in Message.objects.order_by("seq")] == ["action.tracked", "action.reversed"]


def test_replaying_the_delivery_that_wrote_a_change_writes_no_second_message(send, every_kind):
    from events.processing import replay

    send(action_id="A1")
    replay(Delivery.objects.all())
    assert Message.objects.count() == 1


def test_endpoints_get_only_the_kinds_and_the_brand_they_chose(send, db):
    reversals = Endpoint.objects.create(url="https://example.com/rev", kinds=["reversed"])
    statuses = Endpoint.objects.create(url="https://example.com/status", kinds=["status_changed"])
    Endpoint.objects.create(url="https://example.com/off", active=False)
    send(action_id="A1")
    send(action_id="A1", Status="APPROVED", UpdateDate="2026-11-22T10:00:00Z")
    send(action_id="A1", Status="REVERSED", UpdateDate="2026-11-23T10:00:00Z")
    send(postback_params(action_id="B1", CampaignId="2002", CampaignName="Other", Status="REVERSED"))
    by_endpoint = {(m.endpoint.url, body_of(m)["data"]["action"]["id"], m.type) for m in Message.objects.all()}
    assert by_endpoint == {
        (statuses.url, "A1", "action.status_changed"),
        (reversals.url, "A1", "action.reversed"),
        (reversals.url, "B1", "action.reversed"),
    }
    brand_only = Endpoint.objects.create(url="https://example.com/acme", brand=Message.objects.first().event.brand)
    send(postback_params(action_id="B2", CampaignId="2002", CampaignName="Other"))
    send(action_id="A2")
    assert [body_of(m)["data"]["action"]["id"] for m in brand_only.messages.all()] == ["A2"]


def test_a_change_whose_messages_cannot_be_written_is_not_applied_either(store, every_kind, monkeypatch):
    from events.processing import process_pending

    store(action_id="A1")

    def broken(*args, **kwargs):
        raise RuntimeError("outbox unavailable")

    monkeypatch.setattr(Message.objects, "bulk_create", broken)
    process_pending()
    assert Delivery.objects.get().outcome == "failed"
    assert not ActionEvent.objects.exists() and not Message.objects.exists()
