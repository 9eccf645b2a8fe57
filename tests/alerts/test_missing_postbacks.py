"""Missing postbacks, found by reconciling with impact.com's API (a local server speaking it)."""

from datetime import timedelta

import pytest
import time_machine
from delay_helpers import MIN, T0, iso, reconcile_at, send_at, tracked
from django.core.management import call_command
from fake_impact import action_record, update_record

from events.alerts import watcher
from events.models import Action, ActionEvent, ApiChange, DelayAlert, ImpactAccount

T = T0 + timedelta(days=1)


@pytest.fixture
def two_changes(impact, send):
    """A1 was tracked (with its postback) yesterday; at T impact.com tracks A9 and approves A1."""
    tracked(send, "A1", T0, T0 + MIN)
    impact.actions.append(action_record("A9", T))
    impact.updates.append(update_record("A1", T + 5 * MIN))
    return impact


def test_changes_are_not_missing_before_their_hour_is_up(two_changes, send):
    report = reconcile_at(two_changes, T + 30 * MIN)
    assert (report.fetched, report.stored, report.error) == (2, 2, "")
    assert watcher.check(now=T + 59 * MIN)["missing"] == 0
    assert not DelayAlert.objects.exists()


def test_change_without_postback_after_an_hour_opens_a_missing_alert_naming_action_change_and_time(two_changes):
    reconcile_at(two_changes, T + 30 * MIN)
    watcher.check(now=T + 70 * MIN)

    alert = DelayAlert.objects.get()
    assert (alert.kind, alert.status, alert.item_count) == ("missing", "open", 2)
    assert alert.title == "Missing postbacks – Acme Shoes: 2 changes, no postback yet"
    items = list(alert.items.values_list("action_id", "change", "changed_at", "received_at"))
    assert items == [("A9", "tracked", T, None), ("A1", "modified", T + 5 * MIN, None)]


def test_missing_alert_resolves_itself_when_the_postbacks_arrive_and_records_the_real_delay(two_changes, send):
    reconcile_at(two_changes, T + 30 * MIN)
    watcher.check(now=T + 70 * MIN)
    alert = DelayAlert.objects.get()

    tracked(send, "A9", T, T + 80 * MIN)
    alert.refresh_from_db()
    assert alert.status == "open"  # A1's change is still missing
    assert alert.items.get(action_id="A9").delay_seconds == 80 * 60

    # A1's postback has no update time: it matches the API change by its values (status, amounts).
    send_at(send, T + 90 * MIN, action_id="A1", Status="APPROVED", Amount="80.00", Payout="8.00", CreationDate=None)
    alert.refresh_from_db()
    assert alert.status == "resolved"
    assert alert.items.get(action_id="A1").delay_seconds == 85 * 60
    assert alert.max_delay_seconds == 85 * 60
    assert "longest delay 1 h 25 min" in alert.changes.last().note
    # Those postbacks were late, but the missing alert already holds them: no second alert.
    assert not DelayAlert.objects.filter(kind="late").exists()


def test_postback_received_before_the_reconciliation_is_not_missing(impact, send):
    impact.actions.append(action_record("A9", T))
    tracked(send, "A9", T, T + 2 * MIN)
    report = reconcile_at(impact, T + 30 * MIN)
    assert report.matched == 1
    assert watcher.check(now=T + 3 * 60 * MIN)["missing"] == 0
    assert ApiChange.objects.get().received_at == T + 2 * MIN


def test_reading_the_same_window_again_stores_nothing_twice(two_changes):
    reconcile_at(two_changes, T + 30 * MIN)
    report = reconcile_at(two_changes, T + 50 * MIN)
    assert report.stored == 0
    assert ApiChange.objects.count() == 2


def test_backfill_applies_missing_changes_as_api_events_never_taken_for_postbacks(two_changes, capsys):
    reconcile_at(two_changes, T + 30 * MIN)
    with time_machine.travel(T + 70 * MIN, tick=False):
        call_command("reconcile_impact", "--backfill")
    out = capsys.readouterr().out
    assert "Backfilled 2 change(s)" in out and "Budget:" in out

    api_events = ActionEvent.objects.filter(source="api").select_related("action")
    assert sorted((e.action.action_id, e.kind) for e in api_events) == [("A1", "modified"), ("A9", "tracked")]
    assert all(e.delay_seconds is None and e.delivery_id is None for e in api_events)
    a1 = Action.objects.get(action_id="A1")
    assert (a1.state, str(a1.amount), str(a1.payout)) == ("modified", "80.000000", "8.000000")
    assert ActionEvent.objects.filter(source="postback").count() == 1  # only A1's original postback
    assert not ApiChange.objects.filter(postback_event__isnull=False).exists()

    alert = DelayAlert.objects.get(kind="missing")
    assert alert.status == "resolved"
    assert all(i.backfilled_at == T + 70 * MIN and i.received_at is None for i in alert.items.all())


def test_reconcile_without_an_account_says_how_to_add_one(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="Django admin"):
        call_command("reconcile_impact")


def test_update_reversing_an_action_is_a_reversal(impact, send):
    tracked(send, "A1", T0, T0 + MIN)
    impact.updates.append(update_record("A1", T, state="REVERSED", amount="0", payout="0"))
    reconcile_at(impact, T + 30 * MIN)
    assert ApiChange.objects.get().kind == "reversed"
    send_at(send, T + 40 * MIN, action_id="A1", Status="REVERSED", CreationDate=None, UpdateDate=iso(T))
    assert ApiChange.objects.get().received_at == T + 40 * MIN


def test_missing_changes_during_maintenance_make_an_expected_alert(two_changes, settings):
    from events.models import MaintenanceWindow, Notification

    settings.ALERT_EMAILS = ["ops@example.com"]
    MaintenanceWindow.objects.create(starts_at=T - 10 * MIN, ends_at=T + 30 * MIN, note="postbacks paused")
    reconcile_at(two_changes, T + 30 * MIN)
    watcher.check(now=T + 70 * MIN)
    alert = DelayAlert.objects.get()
    assert (alert.kind, alert.expected, alert.item_count) == ("missing", True, 2)
    assert not Notification.objects.exists()


def test_reconcile_impact_waits_when_impact_asked_to(two_changes, capsys):
    from django.core.management.base import CommandError

    ImpactAccount.objects.update(paused_until=T + 60 * MIN)
    with time_machine.travel(T + 30 * MIN, tick=False), pytest.raises(CommandError):
        call_command("reconcile_impact")
    assert "asked to wait until 2026-11-21 23:03:11 UTC" in capsys.readouterr().out
    assert two_changes.requests == []
