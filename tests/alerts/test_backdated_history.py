"""A simulated history backdated once sent (the demo) is judged for lateness after the backdating,
never on arrival; everything else is judged on arrival."""

from __future__ import annotations

import pytest
import time_machine
from delay_helpers import MIN, T0, iso

from events.alerts.late import judge_backdated
from events.models import ActionEvent, Credential, DelayAlert, Notification


@pytest.fixture
def history_credential(db):
    credential, secret = Credential.create_with_secret(label="demo simulator", simulated_history=True)
    credential.secret = secret
    return credential


def send_with(send, credential, received, **params):
    with time_machine.travel(received, tick=False):
        response = send(headers={credential.header_name: credential.secret}, **params)
    assert response.delivery.outcome == "applied"


def test_a_late_postback_of_a_backdated_history_opens_nothing_on_arrival(send, history_credential):
    send_with(send, history_credential, T0 + 30 * 24 * 60 * MIN, action_id="OLD", CreationDate=iso(T0))
    assert not DelayAlert.objects.exists() and not Notification.objects.exists()


def test_once_backdated_only_the_postbacks_still_over_the_hour_join_an_alert_at_their_receipt(send, history_credential):
    month_later = T0 + 30 * 24 * 60 * MIN
    for name in ("ON_TIME", "LATE_1", "LATE_2"):
        send_with(send, history_credential, month_later, action_id=name, CreationDate=iso(T0))
    # Backdated: ON_TIME was sent two minutes after its change, the others 2 h and 2 h 05 min after.
    for name, received in (("ON_TIME", T0 + 2 * MIN), ("LATE_1", T0 + 120 * MIN), ("LATE_2", T0 + 125 * MIN)):
        ActionEvent.objects.filter(action__action_id=name).update(
            received_at=received, delay_seconds=int((received - T0).total_seconds())
        )

    assert judge_backdated(ActionEvent.objects.all()) == 2
    alert = DelayAlert.objects.get()
    assert (alert.opened_at, alert.last_item_at, alert.item_count) == (T0 + 120 * MIN, T0 + 125 * MIN, 2)
    assert alert.title == "Late postbacks – Acme Shoes: 2 changes, longest delay 2 h 05 min"
    assert sorted(alert.items.values_list("action_id", "received_at")) == [
        ("LATE_1", T0 + 120 * MIN),
        ("LATE_2", T0 + 125 * MIN),
    ]
    assert judge_backdated(ActionEvent.objects.all()) == 0  # judged once


def test_a_backdated_alert_that_went_quiet_is_resolved_when_it_went_quiet(send, history_credential):
    later = T0 + 30 * 24 * 60 * MIN
    send_with(send, history_credential, later, action_id="FIRST", CreationDate=iso(T0))
    send_with(send, history_credential, later, action_id="NEXT_DAY", CreationDate=iso(T0 + 24 * 60 * MIN))
    for name, received in (("FIRST", T0 + 90 * MIN), ("NEXT_DAY", T0 + (24 * 60 + 90) * MIN)):
        changed = ActionEvent.objects.get(action__action_id=name).changed_at
        ActionEvent.objects.filter(action__action_id=name).update(
            received_at=received, delay_seconds=int((received - changed).total_seconds())
        )

    assert judge_backdated(ActionEvent.objects.all()) == 2
    first, second = DelayAlert.objects.order_by("opened_at")
    assert (first.status, first.resolved_at) == ("resolved", T0 + 90 * MIN + 15 * MIN)
    assert (second.status, second.opened_at) == ("open", T0 + (24 * 60 + 90) * MIN)


def test_the_same_late_postback_with_an_ordinary_credential_opens_its_alert_on_arrival(send):
    with time_machine.travel(T0 + 2 * 60 * MIN, tick=False):
        send(action_id="A1", CreationDate=iso(T0))
    assert DelayAlert.objects.get().item_count == 1
