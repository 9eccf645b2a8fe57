"""Late postbacks: a postback that arrives over DELAY_ALERT_AFTER after its change joins its
brand's *late* alert; the alert resolves itself once postbacks are on time again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from events.common.times import format_duration, format_moment
from events.impact import promises
from events.lifecycle import Result
from events.models import ActionEvent, AlertItem, AlertKind, DelayAlert, EventSource, Outcome

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
    late = [event for event in events if promises.is_alert_late(event.delay_seconds)]
    if late:
        in_alerts = set(AlertItem.objects.filter(event__in=late).values_list("event_id", flat=True))
        for event in late:
            if event.pk not in in_alerts:
                record_late(event)


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
    resolved = 0
    quiet = DelayAlert.objects.active().filter(kind=AlertKind.LATE, last_item_at__lte=now - late_quiet())
    for alert in quiet:
        since, longest = format_moment(alert.last_item_at), format_duration(alert.max_delay_seconds)
        note = f"no late postback since {since}; longest delay {longest}"
        resolved += resolve(alert, now=now, note=note)
    return resolved
