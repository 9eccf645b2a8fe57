"""One change, one history entry: a change impact.com's API reported and `reconcile_impact --backfill`
recorded is joined by its real postback when that arrives (which records the real delay), in
either order; with several changes of one kind on an action and no update time, postbacks are
matched to the API's changes by their values. Through the real endpoint and a local server
speaking impact.com's API."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from delay_helpers import MIN, T0, iso, reconcile_at, send_at, tracked
from django.core.management import call_command
from fake_impact import action_record, update_record

from events.models import Action, ActionEvent, ActionReport, ApiChange, DelayAlert, Delivery, Endpoint, Message
from events.processing import process_pending, replay
from events.reporting import rollups

T = T0 + timedelta(days=1)
# A1's approval as its postback says it, without an update time (most templates have none).
APPROVAL = {"action_id": "A1", "Status": "APPROVED", "Amount": "80.00", "Payout": "8.00", "CreationDate": None}


def history(action_id: str) -> list[tuple]:
    """(kind, source, delay_seconds) of each entry of the action, in history order."""
    rows = ActionEvent.objects.filter(action__action_id=action_id).order_by("seq")
    return list(rows.values_list("kind", "source", "delay_seconds"))


def backfill_at(moment) -> None:
    with time_machine.travel(moment, tick=False):
        call_command("reconcile_impact", "--backfill", stdout=io.StringIO())


@pytest.fixture
def two_changes(impact, send):
    """A1 was tracked (with its postback) yesterday; at T impact.com tracks A9 and approves A1."""
    tracked(send, "A1", T0, T0 + MIN)
    impact.actions.append(action_record("A9", T))
    impact.updates.append(update_record("A1", T + 5 * MIN))
    return impact


@pytest.fixture
def backfilled(two_changes):
    """No postback came for either change: `reconcile_impact --backfill` recorded both from the API."""
    backfill_at(T + 70 * MIN)
    assert history("A9") == [("tracked", "api", None)]
    assert history("A1") == [("tracked", "postback", 60), ("modified", "api", None)]
    return two_changes


def test_the_real_postback_of_a_backfilled_change_joins_its_entry_and_records_the_real_delay(backfilled, send):
    a9 = tracked(send, "A9", T, T + 80 * MIN)
    a1 = send_at(send, T + 90 * MIN, **APPROVAL)

    assert history("A9") == [("tracked", "postback", 80 * 60)]
    assert history("A1") == [("tracked", "postback", 60), ("modified", "postback", 85 * 60)]
    for response, action_id in ((a9, "A9"), (a1, "A1")):
        entry = ActionEvent.objects.filter(action__action_id=action_id).latest("seq")
        assert response.delivery.outcome == "applied"
        assert response.delivery.event_id == entry.pk and entry.delivery_id == response.delivery.pk
        assert entry.received_at == response.delivery.received_at
        change = ApiChange.objects.get(action_id=action_id)
        assert change.backfilled_event_id == change.postback_event_id == entry.pk
        assert change.received_at == response.delivery.received_at
    a1_action = Action.objects.get(action_id="A1")
    assert (a1_action.state, a1_action.event_count, a1_action.last_received_at) == ("modified", 2, T + 90 * MIN)
    # The missing alert's evidence says when each postback came; being in it, they open no late alert.
    alert = DelayAlert.objects.get()
    assert sorted(alert.items.values_list("action_id", "delay_seconds")) == [("A1", 85 * 60), ("A9", 80 * 60)]
    assert alert.max_delay_seconds == 85 * 60


def test_a_postback_with_the_update_time_joins_the_backfilled_change_by_that_time(backfilled, send):
    send_at(send, T + 90 * MIN, **APPROVAL, UpdateDate=iso(T + 5 * MIN))
    assert history("A1") == [("tracked", "postback", 60), ("modified", "postback", 85 * 60)]


def test_retries_and_replays_of_the_joining_postback_are_still_one_entry(backfilled, send):
    first = send_at(send, T + 90 * MIN, **APPROVAL)
    with time_machine.travel(T + 95 * MIN, tick=False):
        retry = send(**APPROVAL)
    assert (retry.delivery.outcome, retry.delivery.event_id) == ("duplicate", first.delivery.event_id)
    assert replay(Delivery.objects.filter(pk__in=[first.delivery.pk, retry.delivery.pk])) == {
        "applied": 1,
        "duplicate": 1,
    }
    assert history("A1") == [("tracked", "postback", 60), ("modified", "postback", 85 * 60)]
    assert ActionEvent.objects.get(pk=first.delivery.event_id).duplicate_count == 1


def test_the_joining_postback_and_its_retry_in_one_batch_end_as_one_by_one(backfilled, store):
    with time_machine.travel(T + 90 * MIN, tick=False):
        store(**APPROVAL)
        store(**APPROVAL)
        process_pending()
    assert list(Delivery.objects.order_by("-id").values_list("outcome", flat=True)[:2]) == ["duplicate", "applied"]
    assert history("A1") == [("tracked", "postback", 60), ("modified", "postback", 85 * 60)]


def test_the_joined_change_is_forwarded_once_when_its_postback_comes(backfilled, send):
    """The backfill forwards nothing (no postback came); the postback that joins forwards the change."""
    Endpoint.objects.create(url="https://example.com/all")
    send_at(send, T + 90 * MIN, **APPROVAL)
    with time_machine.travel(T + 95 * MIN, tick=False):
        send(**APPROVAL)  # impact.com's retry
    messages = [(m.seq, json.loads(m.body)) for m in Message.objects.all()]
    assert [(seq, body["type"], body["data"]["action"]["amount"]) for seq, body in messages] == [
        (2, "action.modified", "80.000000")
    ]


def test_the_joined_entry_leaves_the_backfill_day_in_an_overview_already_counted(backfilled, send):
    day = (datetime(2026, 11, 21, tzinfo=UTC), datetime(2026, 11, 22, tzinfo=UTC))  # T + 70 min is in it
    later = T + 3 * 24 * 60 * MIN

    def entries_that_day() -> int:
        return sum(row["events"] for row in rollups.figures(*day, "day", ZoneInfo("UTC"), now=later).rows)

    assert entries_that_day() == 2  # counted, and kept as the day's rollup
    tracked(send, "A9", T, later)
    assert entries_that_day() == 1


def test_a_postback_of_another_change_is_an_entry_of_its_own(backfilled, send):
    """Its values are not the backfilled change's: a change the API has not listed yet."""
    send_at(send, T + 90 * MIN, **{**APPROVAL, "Amount": "60.00", "Payout": "6.00"})
    assert history("A1") == [("tracked", "postback", 60), ("modified", "api", None), ("modified", "postback", None)]


def test_postbacks_received_before_the_backfill_leave_nothing_to_backfill(two_changes, send):
    reconcile_at(two_changes, T + 30 * MIN)
    tracked(send, "A9", T, T + 40 * MIN)
    send_at(send, T + 50 * MIN, **APPROVAL)
    backfill_at(T + 70 * MIN)

    assert history("A9") == [("tracked", "postback", 40 * 60)]
    assert history("A1") == [("tracked", "postback", 60), ("modified", "postback", None)]
    assert sorted(ApiChange.objects.values_list("action_id", "received_at", "backfilled_event")) == [
        ("A1", T + 50 * MIN, None),
        ("A9", T + 40 * MIN, None),
    ]
    assert not DelayAlert.objects.exists()


def test_postbacks_received_before_the_changes_were_read_leave_nothing_to_backfill(two_changes, send):
    tracked(send, "A9", T, T + 40 * MIN)
    send_at(send, T + 50 * MIN, **APPROVAL)
    backfill_at(T + 70 * MIN)  # reads the API for the first time

    assert history("A9") == [("tracked", "postback", 40 * 60)]
    assert history("A1") == [("tracked", "postback", 60), ("modified", "postback", None)]
    assert not ActionEvent.objects.filter(source="api").exists()


def test_the_actions_record_and_the_update_creating_the_action_are_one_tracking(impact, send):
    """Both listings name A9's creation (the update a few seconds after CreationDate): one change, one
    entry once backfilled, and its postback joins it."""
    impact.actions.append(action_record("A9", T))
    creating = update_record("A9", T + timedelta(seconds=3), state="PENDING", amount="100.00", payout="10.00")
    impact.updates.append({**creating, "DeltaAmount": "100.00", "DeltaPayout": "10.00"})
    backfill_at(T + 70 * MIN)
    assert list(ApiChange.objects.values_list("kind", "changed_at")) == [("tracked", T)]
    assert history("A9") == [("tracked", "api", None)]
    tracked(send, "A9", T, T + 80 * MIN)
    assert history("A9") == [("tracked", "postback", 80 * 60)]


# --- The postback's word against the API's -------------------------------------------------------------

AT_ITS_TIME = {**APPROVAL, "UpdateDate": iso(T + 5 * MIN)}


def a1_entry() -> ActionEvent:
    return ActionEvent.objects.get(action__action_id="A1", seq=2)


def test_a_postback_at_the_changes_update_time_joins_its_entry_whatever_values_it_carries(backfilled, send):
    """Same action, kind and update time: the same change, though the postback says LOCKED and 80.01
    where the API said APPROVED and 80.00. One entry; it keeps the API's values (counted with them
    since the backfill) and says what the postback said."""
    response = send_at(send, T + 90 * MIN, **{**AT_ITS_TIME, "Status": "LOCKED", "Amount": "80.01"})

    assert history("A1") == [("tracked", "postback", 60), ("modified", "postback", 85 * 60)]
    entry = a1_entry()
    assert response.delivery.event_id == entry.pk
    assert entry.anomaly == "postback differs from impact.com's API: status APPROVED → LOCKED, amount 80.00 → 80.01"
    assert (entry.status, entry.amount) == ("APPROVED", Decimal("80.00"))
    action = Action.objects.get(action_id="A1")
    assert (action.status, action.amount, action.event_count) == ("APPROVED", Decimal("80.00"), 2)
    assert ApiChange.objects.get(action_id="A1").postback_event_id == entry.pk


@pytest.mark.parametrize("first", ["same values", "other values"])
def test_another_postback_of_that_change_is_a_duplicate_of_its_entry_whichever_comes_first(backfilled, send, first):
    """Two postbacks at the change's update time, one saying 80.01: one change, one entry, the same
    whichever came first, noting what the other one said."""
    postbacks = {"same values": AT_ITS_TIME, "other values": {**AT_ITS_TIME, "Amount": "80.01"}}
    order = [first, *(name for name in postbacks if name != first)]
    outcomes = []
    for minutes, name in zip((90, 95), order, strict=True):
        with time_machine.travel(T + minutes * MIN, tick=False):
            outcomes.append(send(**postbacks[name]).delivery.outcome)

    assert outcomes == ["applied", "duplicate"]
    assert history("A1") == [("tracked", "postback", 60), ("modified", "postback", 85 * 60)]
    entry = a1_entry()
    assert (entry.anomaly, entry.duplicate_count) == ("postback differs from impact.com's API: amount 80.00 → 80.01", 1)
    assert Action.objects.get(action_id="A1").amount == Decimal("80.00")
    assert sorted(Delivery.objects.filter(event=entry).values_list("outcome", flat=True)) == ["applied", "duplicate"]


def test_a_postback_at_the_changes_time_with_other_values_answers_it_before_the_backfill_too(two_changes, send):
    """The reconciliation reads the change's identity as the join does: the postback that came before
    the backfill answered the change, whatever values it carries, and nothing is recorded twice."""
    reconcile_at(two_changes, T + 30 * MIN)
    send_at(send, T + 50 * MIN, **{**AT_ITS_TIME, "Amount": "80.01"})
    backfill_at(T + 70 * MIN)
    assert history("A1") == [("tracked", "postback", 60), ("modified", "postback", 45 * 60)]
    assert ApiChange.objects.get(action_id="A1").received_at == T + 50 * MIN


def test_a_postback_at_a_reversals_time_that_does_not_say_reversed_does_not_answer_it(impact, send):
    """A reversal is reported only by a postback that says so: one at its time that does not (applied
    as a modification) leaves it missing, then backfilled, as the join would not join it either."""
    tracked(send, "A1", T0, T0 + MIN)
    impact.updates.append(update_record("A1", T + 5 * MIN, state="REVERSED", payout="0.00"))
    reconcile_at(impact, T + 10 * MIN)
    send_at(send, T + 20 * MIN, **AT_ITS_TIME)
    assert ApiChange.objects.get(action_id="A1").postback_event is None
    backfill_at(T + 70 * MIN)
    assert history("A1") == [("tracked", "postback", 60), ("modified", "postback", 15 * 60), ("reversed", "api", None)]


# A pending change without UpdateDate and without deltas: as a postback it could be a tracking.
PENDING_80 = {**APPROVAL, "Status": "PENDING"}


@pytest.fixture
def pending_change(impact, send):
    """A1 tracked pending at 100.00 / 10.00 (its postback came); at T + 5 min impact.com lowers it to
    80.00 / 8.00, still pending, and that postback is late: the change is backfilled."""
    tracked(send, "A1", T0, T0 + MIN)
    impact.updates.append(update_record("A1", T + 5 * MIN, state="PENDING"))
    backfill_at(T + 70 * MIN)
    assert history("A1") == [("tracked", "postback", 60), ("modified", "api", None)]
    return impact


def test_a_pending_postback_without_a_time_joins_the_modification_its_values_tell_from_the_tracking(
    pending_change, send
):
    """It could be a tracking by its form, but the action's tracking was in the history before the
    modification was backfilled, and its values (100.00) are not the postback's (80.00)."""
    send_at(send, T + 90 * MIN, **PENDING_80)
    assert history("A1") == [("tracked", "postback", 60), ("modified", "postback", 85 * 60)]


def test_a_pending_postback_without_a_time_with_the_trackings_values_is_an_entry_of_its_own(pending_change, send):
    """Its values are the tracking's, not the backfilled modification's: not that change."""
    send_at(send, T + 90 * MIN, **{**PENDING_80, "Amount": "100.00", "Payout": "10.00"})
    assert history("A1") == [("tracked", "postback", 60), ("modified", "api", None), ("modified", "postback", None)]


# --- Two changes of one kind on one action, postbacks without an update time ---------------------------


def approval(amount: str, payout: str) -> dict:
    """A1's approval at that amount, with deltas from 100.00 / 10.00 (both say -20 / -2 below)."""
    return {**APPROVAL, "Amount": amount, "Payout": payout, "DeltaAmount": "-20.00", "DeltaPayout": "-2.00"}


FIRST, SECOND = approval("80.00", "8.00"), approval("60.00", "6.00")


@pytest.fixture
def two_approvals(impact, send):
    """A1 tracked yesterday; impact.com changes it twice, both APPROVED with the same deltas: only the
    amounts tell the changes apart."""
    tracked(send, "A1", T0, T0 + MIN)
    impact.updates.append(update_record("A1", T + 5 * MIN, amount="80.00", payout="8.00"))
    impact.updates.append(update_record("A1", T + 10 * MIN, amount="60.00", payout="6.00"))
    return impact


def answered() -> list[tuple]:
    """(when impact.com made the change, when its postback came) for each API change."""
    return list(ApiChange.objects.order_by("changed_at").values_list("changed_at", "received_at"))


def test_postbacks_arriving_after_the_changes_were_read_answer_the_change_with_their_values(two_approvals, send):
    reconcile_at(two_approvals, T + 12 * MIN)
    send_at(send, T + 20 * MIN, **SECOND)  # the later change's postback comes first
    assert answered() == [(T + 5 * MIN, None), (T + 10 * MIN, T + 20 * MIN)]
    send_at(send, T + 30 * MIN, **FIRST)
    assert answered() == [(T + 5 * MIN, T + 30 * MIN), (T + 10 * MIN, T + 20 * MIN)]


def test_changes_read_after_their_postbacks_are_answered_by_the_postbacks_with_their_values(two_approvals, send):
    send_at(send, T + 20 * MIN, **SECOND)
    send_at(send, T + 25 * MIN, **FIRST)
    report = reconcile_at(two_approvals, T + 30 * MIN)
    assert report.matched == 2
    assert answered() == [(T + 5 * MIN, T + 25 * MIN), (T + 10 * MIN, T + 20 * MIN)]


def test_without_values_in_common_a_postback_answers_the_earliest_change_of_its_kind(two_approvals, send):
    reconcile_at(two_approvals, T + 12 * MIN)
    send_at(send, T + 20 * MIN, action_id="A1", Status=None, Amount=None, Payout=None, CreationDate=None)
    assert answered() == [(T + 5 * MIN, T + 20 * MIN), (T + 10 * MIN, None)]


def test_postbacks_of_two_backfilled_changes_each_join_their_own_entry(two_approvals, send):
    backfill_at(T + 70 * MIN)
    send_at(send, T + 80 * MIN, **SECOND)
    send_at(send, T + 90 * MIN, **FIRST)

    assert history("A1") == [
        ("tracked", "postback", 60),
        ("modified", "postback", 85 * 60),
        ("modified", "postback", 70 * 60),
    ]
    assert answered() == [(T + 5 * MIN, T + 90 * MIN), (T + 10 * MIN, T + 80 * MIN)]
    assert str(Action.objects.get(action_id="A1").amount) == "60.000000"  # the latest change's, by impact-side time


def test_backfilled_changes_are_in_the_reports_at_once(backfilled):
    """The reports' rows (money by status, the calendar) are kept where the history changes, the
    backfill included: A9 exists only through it, A1's approval came only through it."""
    groups = dict(ActionReport.objects.values_list("action__action_id", "group"))
    assert groups.keys() == {"A1", "A9"}
    assert groups["A1"] == "approved"
