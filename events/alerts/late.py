"""Late postbacks: a postback that arrives over DELAY_ALERT_AFTER after its change joins its
brand's *late* alert; the alert resolves itself once postbacks are on time again.

A simulated history that is backdated once sent (the demo) is judged after the backdating
(`judge_backdated`), never on arrival: sent now, a month of postbacks would all look a month late.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction

from events.common.times import format_duration, format_moment
from events.impact import promises
from events.lifecycle import Result
from events.models import ActionEvent, AlertItem, AlertKind, Credential, DelayAlert, EventSource, Outcome

from .missing import answer_waiting_changes
from .state import active_alert, add_items, is_expected, resolve


def late_quiet() -> timedelta:
    """A late alert resolves itself once no late postback has arrived for this long."""
    return promises.late_after()


def after_batch(results: list[Result]) -> None:
    """Run once per processed batch, inside its transaction, after the lifecycle applied it: the
    postbacks that answer changes the API reported record their real delay, and a late postback
    joins its brand's late alert (once: a replay finds it there already)."""
    events = [r.event for r in results if r.outcome == Outcome.APPLIED and r.event.source == EventSource.POSTBACK]
    if not events:
        return
    answer_waiting_changes(events)
    late = [e for e in events if promises.is_alert_late(e.delay_seconds) and not _judged_after_backdating(e)]
    if late:
        in_alerts = set(AlertItem.objects.filter(event__in=late).values_list("event_id", flat=True))
        for event in late:
            if event.pk not in in_alerts:
                record_late(event)


def _judged_after_backdating(event: ActionEvent) -> bool:
    """Sent with a credential of a simulated history that is backdated once sent (a late postback only:
    one query)."""
    credential_id = event.delivery.credential_id if event.delivery is not None else None
    return credential_id is not None and Credential.objects.filter(pk=credential_id, simulated_history=True).exists()


def record_late(event: ActionEvent, now: datetime | None = None) -> DelayAlert:
    """A postback arrived over DELAY_ALERT_AFTER after its change: add it to its brand's late alert."""
    now = now or event.received_at
    expected = is_expected(event.changed_at, event.received_at)
    summary = (
        f"action {event.action.action_id} {event.kind} at {format_moment(event.changed_at)}, "
        f"postback {format_duration(event.delay_seconds)} late"
    )
    alert = active_alert(event.brand, AlertKind.LATE, expected, summary, now)
    item = AlertItem(
        action_id=event.action.action_id,
        change=event.kind,
        status=event.status,
        changed_at=event.changed_at,
        received_at=event.received_at,
        delay_seconds=event.delay_seconds,
        event=event,
    )
    add_items(alert, [item], now)
    return alert


def resolve_quiet_late(now: datetime) -> int:
    """Late alerts with no new late postback for a while: postbacks are on time again."""
    return sum(_resolve_quiet(alert, now) for alert in _quiet(now))


def _quiet(now: datetime):
    return DelayAlert.objects.active().filter(kind=AlertKind.LATE, last_item_at__lte=now - late_quiet())


def _resolve_quiet(alert: DelayAlert, now: datetime) -> bool:
    since, longest = format_moment(alert.last_item_at), format_duration(alert.max_delay_seconds)
    return resolve(alert, now=now, note=f"no late postback since {since}; longest delay {longest}")


def judge_backdated(events) -> int:
    """Judge postbacks whose receive times were just moved back to when they were sent (the demo's
    history), as if each had been judged on arrival: in receive order, an alert-late one joins its
    brand's late alert at its receive time, and a late alert that went quiet before it is resolved
    when it went quiet. Returns how many joined an alert."""
    late = (
        events.filter(source=EventSource.POSTBACK, delay_seconds__gt=promises.alert_after_seconds())
        .exclude(pk__in=AlertItem.objects.filter(event__isnull=False).values("event_id"))
        .select_related("action", "brand")
        .order_by("received_at", "id")
    )
    judged = 0
    for event in late:
        with transaction.atomic():
            for alert in _quiet(event.received_at):
                _resolve_quiet(alert, alert.last_item_at + late_quiet())
            record_late(event)
        judged += 1
    return judged
