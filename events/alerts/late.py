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
from .state import Windows, active_alerts, add_items, resolve


def late_quiet() -> timedelta:
    """A late alert resolves itself once no late postback has arrived for this long."""
    return promises.late_after()


def after_batch(results: list[Result]) -> None:
    """Run once per processed batch, inside its transaction, after the lifecycle applied it: the
    postbacks that answer changes the API reported record their real delay, and the late postbacks
    join their brands' late alerts (once: a replay finds them there already). A fixed number of
    queries per brand with late postbacks, whatever their number: a backlog sent after a
    maintenance pause is late nearly all of it."""
    events = [r.event for r in results if r.outcome == Outcome.APPLIED and r.event.source == EventSource.POSTBACK]
    if not events:
        return
    answer_waiting_changes(events)
    late = [e for e in events if promises.is_alert_late(e.delay_seconds)]
    if not late:
        return
    backdated = _backdated_credentials(late)
    in_alerts = set(AlertItem.objects.filter(event__in=late).values_list("event_id", flat=True))
    record_late([e for e in late if e.pk not in in_alerts and _credential_id(e) not in backdated])


def _credential_id(event: ActionEvent) -> int | None:
    return event.delivery.credential_id if event.delivery is not None else None


def _backdated_credentials(events: list[ActionEvent]) -> set[int]:
    """Among these postbacks' credentials, those of a simulated history that is backdated once sent
    (judged after the backdating, not on arrival): one query."""
    ids = {_credential_id(e) for e in events} - {None}
    if not ids:
        return set()
    return set(Credential.objects.filter(pk__in=ids, simulated_history=True).values_list("pk", flat=True))


def record_late(events: list[ActionEvent]) -> None:
    """Postbacks that arrived over DELAY_ALERT_AFTER after their changes (in arrival order): each joins
    its brand's late alert, expected if its delay overlaps a maintenance window. An alert opens at the
    receipt of the first postback it cites and its last item is the last one's."""
    if not events:
        return
    windows = Windows(min(e.changed_at for e in events), max(e.received_at for e in events))
    groups: dict[tuple[int, bool], list[ActionEvent]] = {}
    for event in events:
        expected = windows.overlap(event.changed_at, event.received_at)
        groups.setdefault((event.brand_id, expected), []).append(event)
    for brand_id, expected in sorted(groups):  # alerts locked in one order by every processor
        group = groups[(brand_id, expected)]
        first = group[0]
        summary = (
            f"action {first.action.action_id} {first.kind} at {format_moment(first.changed_at)}, "
            f"postback {format_duration(first.delay_seconds)} late"
        )
        alert = active_alerts(AlertKind.LATE, {(brand_id, expected): summary}, first.received_at)[(brand_id, expected)]
        items = [
            AlertItem(
                action_id=event.action.action_id,
                change=event.kind,
                status=event.status,
                changed_at=event.changed_at,
                received_at=event.received_at,
                delay_seconds=event.delay_seconds,
                event=event,
            )
            for event in group
        ]
        add_items(alert, items, group[-1].received_at)


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
            record_late([event])
        judged += 1
    return judged
