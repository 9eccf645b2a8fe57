"""A first postback that carries deltas: impact.com's deltas are the change since the previous update,
so the update that creates an action carries its whole amount and payout as deltas. Through the
real endpoint, every combination that decides the kind."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlencode

import pytest

from events.models import Action, ActionEvent
from tests.conftest import ENDPOINT, processed
from tests.lifecycle.conftest import CREATED, update

WHOLE = {"Amount": "100.00", "DeltaAmount": "100.00", "Payout": "10.00", "DeltaPayout": "10.00"}


def kinds() -> list[str]:
    return list(ActionEvent.objects.order_by("seq").values_list("kind", flat=True))


def test_the_issue_sample_in_snake_case_is_tracked_and_counted_as_gained(
    client, credential, staff_client, time_machine
):
    """As a real account sends it (the template prints DeltaAmount and DeltaPayout)."""
    query = urlencode(
        {
            "campaign_id": "1000",
            "action_id": "19816.5280.969444420",
            "status": "PENDING",
            "payout": "0.65",
            "delta_payout": "0.65",
            "amount": "16.29",
            "delta_amount": "16.29",
            "currency": "USD",
            "creation_date": CREATED.isoformat(),
        }
    )
    time_machine.move_to(CREATED + timedelta(minutes=1), tick=False)
    response = processed(client.get(f"{ENDPOINT}?{query}", headers={credential.header_name: credential.secret}))
    assert response.delivery.outcome == "applied"
    event = ActionEvent.objects.get()
    assert (event.kind, event.to_state, event.out_of_order, event.anomaly) == ("tracked", "tracked", False, "")
    assert Action.objects.get().state == "tracked"

    time_machine.move_to(CREATED + timedelta(minutes=2), tick=False)
    response = staff_client.get("/?period=24h")
    summary = response.context["summary"]
    assert (summary["tracked"], summary["modified"]) == (1, 0)
    (usd,) = response.context["money_cards"]
    assert (usd["gained"], usd["changed"], usd["net"]) == (Decimal("0.65"), 0, Decimal("0.65"))


FIRST = {
    "deltas equal to both whole values": (WHOLE, "tracked"),
    "only the payout delta, equal": ({"Payout": "10.00", "DeltaPayout": "10.00"}, "tracked"),
    "only the amount delta, equal": ({"Amount": "100.00", "DeltaAmount": "100.00"}, "tracked"),
    "a partial delta": ({**WHOLE, "DeltaPayout": "2.00"}, "modified"),
    "a delta without its whole value": ({"Amount": None, "DeltaAmount": "100.00", "DeltaPayout": None}, "modified"),
    "zero deltas": ({"DeltaAmount": "0", "DeltaPayout": "0.00"}, "tracked"),
    "no deltas": ({}, "tracked"),
    "equal deltas, status DEFAULT": ({**WHOLE, "Status": "DEFAULT"}, "tracked"),
    "equal deltas, status APPROVED": ({**WHOLE, "Status": "APPROVED"}, "tracked"),
    "equal deltas, status REJECTED": ({**WHOLE, "Status": "REJECTED"}, "reversed"),
    "equal deltas, explicit event type": ({**WHOLE, "EventType": "modified"}, "modified"),
    "equal deltas, update time at creation": ({**WHOLE, "UpdateDate": update(0)}, "tracked"),
    "equal deltas, update time after creation": ({**WHOLE, "UpdateDate": update(5)}, "modified"),
    "partial delta, update time at creation": ({**WHOLE, "DeltaAmount": "40.00", "UpdateDate": update(0)}, "modified"),
}


@pytest.mark.parametrize(("params", "kind"), FIRST.values(), ids=FIRST.keys())
def test_the_kind_of_an_actions_first_postback(post, params, kind):
    post(10, **params)
    assert kinds() == [kind]
    event = ActionEvent.objects.get()
    assert event.out_of_order == (kind != "tracked")


LATER = {
    "deltas equal to the whole values": (WHOLE, "modified"),
    "zero deltas": (
        {"Status": "APPROVED", "DeltaAmount": "0", "DeltaPayout": "0", "UpdateDate": update(30)},
        "modified",
    ),
    "no deltas": ({"Amount": "80.00"}, "modified"),
    "equal deltas, explicit event type": ({**WHOLE, "EventType": "tracked"}, "tracked"),
}


@pytest.mark.parametrize(("params", "kind"), LATER.values(), ids=LATER.keys())
def test_the_kind_of_a_postback_once_the_action_is_tracked(post, params, kind):
    post(1)
    post(40, **params)
    assert kinds() == ["tracked", kind]


def test_the_creating_update_arriving_after_a_reversal_is_the_late_tracked_postback(post):
    post(30, Status="REVERSED", Amount="0", Payout="0", DeltaAmount="-100.00", DeltaPayout="-10.00",
         UpdateDate=update(20))  # fmt: skip
    post(31, **WHOLE)
    assert kinds() == ["reversed", "tracked"]
    tracked = ActionEvent.objects.get(kind="tracked")
    assert (tracked.to_state, tracked.out_of_order) == ("reversed", True)
    assert Action.objects.get().tracked_seen


def test_the_creating_update_arriving_after_a_modification_does_not_undo_it(post):
    post(30, Amount="60.00", Payout="6.00", DeltaAmount="-40.00", DeltaPayout="-4.00", UpdateDate=update(20))
    post(31, **WHOLE)
    assert kinds() == ["modified", "tracked"]
    action = Action.objects.get()
    assert (action.state, action.amount, action.payout) == ("modified", Decimal(60), Decimal(6))
