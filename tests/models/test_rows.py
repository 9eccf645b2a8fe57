"""events.models.sql writes and reads rows exactly as the ORM would (both databases)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from events.impact import Lifecycle
from events.models import Action, ActionEvent, Brand, sql

pytestmark = pytest.mark.django_db

FIELDS = [f.attname for f in Action._meta.concrete_fields]


def an_action(action_id="A1", **values) -> Action:
    brand = Brand.objects.get_or_create(campaign_id="1001", defaults={"name": "Acme"})[0]
    now = datetime(2026, 11, 28, 12, 30, 15, 123456, tzinfo=UTC)
    defaults = {
        "action_id": action_id,
        "brand": brand,
        "state": "tracked",
        "amount": Decimal("129.90"),
        "payout": Decimal("12.99"),
        "currency": "USD",
        "first_received_at": now,
        "last_received_at": now,
        "money_changed_at": now,
        "sub_id1": "newsletter",
    }
    return Action(**{**defaults, **values})


def as_stored(obj):
    return {
        name: getattr(type(obj).objects.get(pk=obj.pk), name) for name in [f.attname for f in obj._meta.concrete_fields]
    }


def test_insert_stores_what_the_orm_would_and_get_reads_it_back_the_same():
    ours, theirs = an_action("A1"), an_action("A2")
    assert sql.insert(ours)
    theirs.save()
    stored_ours, stored_theirs = as_stored(ours), as_stored(theirs)
    for name in FIELDS:
        if name not in ("id", "action_id"):
            assert stored_ours[name] == stored_theirs[name], name
    read = sql.get(Action, "action_id", "A1", lock=True)
    assert {name: getattr(read, name) for name in FIELDS} == stored_ours
    assert not read._state.adding


def test_json_and_none_values_round_trip():
    action = an_action()
    sql.insert(action)
    event = ActionEvent(
        action=action,
        brand_id=action.brand_id,
        seq=1,
        kind=Lifecycle.TRACKED,
        from_state="",
        to_state="tracked",
        changes={"amount": [None, "129.90"], "nested": {"a": [1, 2]}},
        extra={"ü": "☃"},
        fingerprint="f" * 64,
        received_at=action.first_received_at,
        amount=None,
    )
    assert sql.insert(event)
    stored = ActionEvent.objects.get(pk=event.pk)
    assert stored.changes == {"amount": [None, "129.90"], "nested": {"a": [1, 2]}}
    assert stored.extra == {"ü": "☃"}
    assert stored.amount is None
    assert sql.get(ActionEvent, "fingerprint", "f" * 64).changes == stored.changes


def test_insert_on_a_unique_conflict_does_nothing_and_says_so():
    assert sql.insert(an_action("A1"), unique="action_id")
    again = an_action("A1", amount=Decimal("1.00"))
    assert not sql.insert(again, unique="action_id")
    assert again.pk is None
    assert Action.objects.get(action_id="A1").amount == Decimal("129.90")


def test_a_new_action_is_inserted_only_while_its_brand_is_the_one_remembered_for_its_campaign():
    assert not sql.insert_action_if_brand_unchanged(an_action("A1"), "another campaign")
    assert sql.insert_action_if_brand_unchanged(an_action("A2"), "1001")
    assert not sql.insert_action_if_brand_unchanged(an_action("A2"), "1001")  # created first elsewhere
    assert list(Action.objects.values_list("action_id", flat=True)) == ["A2"]


def test_update_writes_the_named_fields_only():
    action = an_action()
    sql.insert(action)
    action.state, action.amount = "reversed", Decimal("0.00")
    sql.update(action, ["state"])
    stored = Action.objects.get(pk=action.pk)
    assert (stored.state, stored.amount) == ("reversed", Decimal("129.90"))
    sql.update(action)
    assert Action.objects.get(pk=action.pk).amount == Decimal("0.00")


def test_get_and_exists_when_nothing_matches():
    assert sql.get(Action, "action_id", "nope") is None
    action = an_action()
    sql.insert(action)
    assert sql.exists(Action, action_id="A1", money_changed_at=action.money_changed_at)
    assert sql.exists(Action, action_id="A1", locking_date=None)
    assert not sql.exists(Action, action_id="A1", money_changed_at=None)
    assert sql.exists(Action, action_id="A1", amount=Decimal("129.90"))
    assert not sql.exists(Action, action_id="A2")
