"""Missing postbacks: changes impact.com's API reported, matched with the postbacks that arrived.

A change with no postback DELAY_ALERT_AFTER later is evidence in its brand's *missing* alert;
the postback arriving later records its real delay (and may resolve the alert); `backfill()`
applies changes that never got one as events whose source is `api`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from events import impact
from events.common.times import format_moment
from events.impact import Lifecycle, promises
from events.lifecycle import apply
from events.models import ActionEvent, AlertItem, AlertKind, ApiChange, Brand, DelayAlert, EventSource

from .state import Windows, active_alerts, recount, resolve_if_answered

# Two impact-side times closer than this are the same change (the API and postbacks round differently).
SAME_TIME = timedelta(seconds=1)
MISSING_BATCH = 5000


@dataclass
class Receipt:
    """What matching needs of a postback event (light to load by the thousand)."""

    id: int
    kind: str
    changed_at: datetime | None
    received_at: datetime


def matches(change: ApiChange, event: ActionEvent | Receipt) -> bool:
    """Does this postback report that change? Same impact-side time, or (time unknown) same kind, after it."""
    if event.changed_at is not None:
        return abs(event.changed_at - change.changed_at) <= SAME_TIME
    return event.kind == change.kind and event.received_at >= change.changed_at - SAME_TIME


def _answer(change: ApiChange, event: ActionEvent | Receipt) -> None:
    """Record that `event` is the postback for `change`, and settle its alert item if it has one."""
    ApiChange.objects.filter(pk=change.pk).update(postback_event_id=event.id, received_at=event.received_at)
    item = AlertItem.objects.filter(api_change=change).select_related("alert").first()
    if item is None:
        return
    delay = int((event.received_at - change.changed_at).total_seconds())
    AlertItem.objects.filter(pk=item.pk).update(received_at=event.received_at, delay_seconds=delay, event_id=event.id)
    alert = item.alert
    DelayAlert.objects.filter(pk=alert.pk, max_delay_seconds__lt=delay).update(max_delay_seconds=delay)
    DelayAlert.objects.filter(pk=alert.pk, max_delay_seconds=None).update(max_delay_seconds=delay)
    resolve_if_answered(alert, event.received_at)


def answer_waiting_changes(events: list[ActionEvent]) -> None:
    """Postbacks arrived (in this order): does each answer a change the API reported and we are
    waiting for? One query for all of them (nearly always finding none: only the reconciler
    records API changes)."""
    waiting: dict[str, list[ApiChange]] = {}
    ids = {event.action.action_id for event in events}
    for change in ApiChange.objects.filter(action_id__in=ids, postback_event=None).order_by("changed_at", "id"):
        waiting.setdefault(change.action_id, []).append(change)
    for event in events:
        changes = waiting.get(event.action.action_id, [])
        for change in changes:
            if matches(change, event):
                _answer(change, event)
                changes.remove(change)
                break


def match_stored_changes(changes: list[ApiChange]) -> set[int]:
    """Match API changes with the postbacks already received; returns the ids of those matched."""
    if not changes:
        return set()
    ids = {c.action_id for c in changes}
    events: dict[str, list[Receipt]] = {}
    rows = (
        ActionEvent.objects.filter(action__action_id__in=ids, source=EventSource.POSTBACK)
        .order_by("received_at", "id")
        .values_list("action__action_id", "id", "kind", "changed_at", "received_at")
    )
    for action_id, *receipt in rows:
        events.setdefault(action_id, []).append(Receipt(*receipt))
    matched = set()
    for change in changes:
        for event in events.get(change.action_id, []):
            if matches(change, event):
                _answer(change, event)
                matched.add(change.pk)
                break
    return matched


def _brands(campaigns: dict[str, str]) -> dict[str, Brand]:
    """{campaign_id: Brand} for the campaigns ({campaign_id: name}), creating the unknown ones."""
    found = {b.campaign_id: b for b in Brand.objects.filter(campaign_id__in=campaigns)}
    missing = [Brand(campaign_id=c, name=n) for c, n in campaigns.items() if c not in found]
    if missing:
        Brand.objects.bulk_create(missing, ignore_conflicts=True)
        found = {b.campaign_id: b for b in Brand.objects.filter(campaign_id__in=campaigns)}
    return found


def open_missing(now: datetime) -> int:
    """Changes the API reported with no postback DELAY_ALERT_AFTER later: one item each, grouped per brand."""
    deadline = now - promises.alert_after()
    due = list(
        ApiChange.objects.filter(postback_event=None, alerted_at=None, changed_at__lte=deadline)
        .defer("payload")
        .order_by("changed_at")[:MISSING_BATCH]
    )
    if not due:
        return 0
    # A postback can have arrived in a way the ingest hook did not see (e.g. before the change was read).
    matched = match_stored_changes(due)
    due = [c for c in due if c.pk not in matched]
    if not due:
        return 0
    windows = Windows(min(c.changed_at for c in due), now)
    brands = _brands({c.campaign_id or Brand.UNKNOWN: c.campaign_name for c in due})
    groups: dict[tuple[int, bool], list[ApiChange]] = {}
    for change in due:
        brand = brands[change.campaign_id or Brand.UNKNOWN]
        groups.setdefault((brand.pk, windows.overlap(change.changed_at, now)), []).append(change)
    with transaction.atomic():
        # Claim the changes nobody alerted meanwhile (locked, then marked), so none is alerted twice.
        claimed = set(
            ApiChange.objects.select_for_update()
            .filter(pk__in=[c.pk for c in due], alerted_at=None, postback_event=None)
            .values_list("pk", flat=True)
        )
        ApiChange.objects.filter(pk__in=claimed).update(alerted_at=now)
        groups = {key: [c for c in changes if c.pk in claimed] for key, changes in groups.items()}
        groups = {key: changes for key, changes in groups.items() if changes}
        summaries = {
            key: f"no postback for action {c[0].action_id} {c[0].kind} at {format_moment(c[0].changed_at)}"
            for key, c in groups.items()
        }
        alerts = active_alerts(AlertKind.MISSING, summaries, now)
        AlertItem.objects.bulk_create(
            [
                AlertItem(
                    alert=alerts[key],
                    action_id=c.action_id,
                    change=c.kind,
                    status=c.state,
                    changed_at=c.changed_at,
                    api_change=c,
                    created_at=now,
                )
                for key, changes in groups.items()
                for c in changes
            ],
            batch_size=1000,
        )
        recount([alerts[key].pk for key in groups], now)
    return len(claimed)


def backfill(now: datetime | None = None, limit: int = 10_000) -> int:
    """Apply changes that never got a postback as events with source `api` (never taken for postbacks)."""
    now = now or timezone.now()
    count = 0
    waiting = ApiChange.objects.filter(
        postback_event=None, backfilled_event=None, changed_at__lte=now - promises.alert_after()
    ).order_by("changed_at")[:limit]
    for change in waiting:
        with transaction.atomic():
            result = apply(postback_from_change(change), received_at=now, source=EventSource.API)
            # Not a postback: its "delay" would only say when we asked the API.
            ActionEvent.objects.filter(pk=result.event.pk).update(delay_seconds=None)
            ApiChange.objects.filter(pk=change.pk).update(backfilled_event=result.event)
            item = AlertItem.objects.filter(api_change=change).select_related("alert").first()
            if item is not None:
                AlertItem.objects.filter(pk=item.pk).update(backfilled_at=now)
                resolve_if_answered(item.alert, now)
        count += 1
    return count


def postback_from_change(change: ApiChange) -> impact.Postback:
    """The API record in postback vocabulary, with the kind stated explicitly."""
    lookup = impact.DEFAULT_LOOKUP
    pairs = [
        (name, str(value))
        for name, value in change.payload.items()
        if value is not None
        and lookup.get(impact.normalise_name(name)) not in (None, "action_id", "event_type", "update_date")
    ]
    pairs.append(("ActionId", change.action_id))
    pairs.append(("EventType", change.kind))
    if change.kind != Lifecycle.TRACKED:
        pairs.append(("UpdateDate", change.changed_at.isoformat()))
    postback = impact.normalise(pairs)
    postback.fields["action_id"] = change.action_id
    return postback
