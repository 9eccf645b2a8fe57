"""An action's first postback on PostgreSQL: one statement (lifecycle.create), the same result as
the transaction (lifecycle.apply), and the transaction whenever more is to be done."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from delay_helpers import MIN, T0, iso
from django.db import connection
from django.test.utils import CaptureQueriesContext

from events import lifecycle, processing
from events.models import Action, ActionEvent, ApiChange, Brand, DelayAlert, Delivery

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

RECEIVED = T0 + 2 * MIN  # on time: two minutes after the change


@pytest.fixture
def created(monkeypatch):
    """The results of lifecycle.create() (None: it wrote nothing and the transaction was used)."""
    results = []
    real = lifecycle.create

    def spy(*args, **kwargs):
        results.append(real(*args, **kwargs))
        return results[-1]

    monkeypatch.setattr(lifecycle, "create", spy)
    return results


def send_on_time(send, at=RECEIVED, **params):
    with time_machine.travel(at, tick=False):
        response = send(**{"CreationDate": iso(T0), "EventDate": iso(T0), **params})
    assert response.status_code == 200, response.content
    return response.json()


def test_a_first_postback_is_stored_then_written_in_one_statement_with_its_outcome(send, created):
    send_on_time(send, action_id="A0")  # reads the credentials and the brand into this process
    with CaptureQueriesContext(connection) as queries:
        answer = send_on_time(send, action_id="A1")
    statements = [query["sql"] for query in queries.captured_queries]
    assert len(statements) == 2, statements
    assert statements[0].startswith('INSERT INTO "events_delivery"')
    assert statements[1].startswith("WITH new_action AS (INSERT INTO")
    assert created[-1] is not None

    delivery = Delivery.objects.get(pk=answer["delivery"])
    assert (answer["outcome"], delivery.outcome, delivery.action_id, delivery.attempts) == ("applied",) * 2 + ("A1", 1)
    event = ActionEvent.objects.get(delivery=delivery)
    assert delivery.event_id == event.pk
    assert (event.kind, event.seq, event.delay_seconds, event.action.action_id) == ("tracked", 1, 120, "A1")
    assert Action.objects.get(action_id="A1").state == "tracked"


FIRST_POSTBACKS = {
    "tracked": {},
    "reversal first": {"Status": "REVERSED", "Amount": "0.00", "DeltaAmount": "-100.00"},
    "modification first": {"Amount": "120.00", "DeltaAmount": "20.00", "UpdateDate": iso(T0 + MIN)},
    "explicit event type": {"EventType": "modified"},
    "no money": {"Amount": None, "Payout": None, "Currency": None},
    "unknown parameters": {"Colour": "blue", "SubId1": "newsletter", "Oid": "order-7"},
}
DIFFERENT = {"id", "action_id", "action", "fingerprint", "money_fingerprint", "delivery", "event", "query_string"}


def fields(obj) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields if f.name not in DIFFERENT}


@pytest.mark.parametrize("params", FIRST_POSTBACKS.values(), ids=FIRST_POSTBACKS.keys())
def test_one_statement_ends_as_the_transaction_would(send, created, monkeypatch, params):
    one = send_on_time(send, action_id="ONE", **params)
    assert created[-1] is not None
    monkeypatch.setattr(lifecycle, "can_create", lambda: False)
    other = send_on_time(send, action_id="TRANSACTION", **params)
    assert len(created) == 1  # the second went through apply()

    assert one["outcome"] == other["outcome"] == "applied"
    assert fields(Action.objects.get(action_id="ONE")) == fields(Action.objects.get(action_id="TRANSACTION"))
    one_event, other_event = (ActionEvent.objects.get(action__action_id=a) for a in ("ONE", "TRANSACTION"))
    assert fields(one_event) == fields(other_event)
    one_delivery, other_delivery = (Delivery.objects.get(pk=answer["delivery"]) for answer in (one, other))
    assert fields(one_delivery) | {"processing_ms": 0} == fields(other_delivery) | {"processing_ms": 0}


def test_a_later_postback_for_the_action_goes_through_the_transaction(send, created):
    send_on_time(send, action_id="A1")
    answer = send_on_time(send, at=RECEIVED + MIN, action_id="A1", Amount="90.00", UpdateDate=iso(T0 + MIN))
    assert created[-1] is None
    assert answer["outcome"] == "applied"
    assert [e.seq for e in ActionEvent.objects.filter(action__action_id="A1").order_by("seq")] == [1, 2]
    assert Action.objects.get(action_id="A1").amount == 90


def test_a_late_first_postback_goes_through_the_transaction_and_is_alerted(send, created):
    with CaptureQueriesContext(connection) as queries:
        send_on_time(send, at=T0 + 61 * MIN, action_id="A1")
    assert created == [None]
    assert not [q for q in queries.captured_queries if q["sql"].startswith("WITH")]  # decided before writing
    assert DelayAlert.objects.get(kind="late").items.get().action_id == "A1"


def test_a_first_postback_an_api_change_waits_for_goes_through_the_transaction_and_answers_it(send, created):
    change = ApiChange.objects.create(action_id="A1", campaign_id="1001", kind="tracked", changed_at=T0)
    answer = send_on_time(send, action_id="A1")
    assert created[-1] is None
    assert not Action.objects.filter(action_id="A1", event_count__gt=1).exists()
    change.refresh_from_db()
    assert change.postback_event_id == Delivery.objects.get(pk=answer["delivery"]).event_id


def test_a_brand_deleted_after_it_was_read_makes_the_statement_write_nothing(send, created):
    send_on_time(send, action_id="A0", CampaignId="3003")  # this process keeps brand 3003's id
    Delivery.objects.update(event=None)
    ActionEvent.objects.all().delete()
    Action.objects.all().delete()
    Brand.objects.filter(campaign_id="3003").delete()
    answer = send_on_time(send, action_id="A1", CampaignId="3003")
    assert created[-1] is None  # the brand check failed: apply() read the brand again
    assert answer["outcome"] == "applied"
    assert Action.objects.get(action_id="A1").brand.campaign_id == "3003"


def test_the_same_first_postback_twice_is_a_duplicate(send, created):
    first = send_on_time(send, action_id="A1")
    again = send_on_time(send, at=RECEIVED + timedelta(seconds=30), action_id="A1")
    assert (first["outcome"], again["outcome"]) == ("applied", "duplicate")
    assert created[0] is not None and created[1] is None
    assert ActionEvent.objects.get(action__action_id="A1").duplicate_count == 1


def test_replaying_a_first_postback_written_in_one_statement_changes_nothing(send, created):
    answer = send_on_time(send, action_id="A1")
    delivery = Delivery.objects.get(pk=answer["delivery"])
    with time_machine.travel(RECEIVED + MIN, tick=False):
        assert processing.replay(Delivery.objects.filter(pk=delivery.pk)) == {"applied": 1}
    assert created[-1] is None  # the action exists now: apply() recognised the delivery's own event
    delivery.refresh_from_db()
    assert (delivery.outcome, delivery.attempts, delivery.event_id) == ("applied", 2, answer_event(answer))
    assert ActionEvent.objects.get(action__action_id="A1").duplicate_count == 0


def answer_event(answer) -> int:
    return ActionEvent.objects.get(delivery_id=answer["delivery"]).pk
