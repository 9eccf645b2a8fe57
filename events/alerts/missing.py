"""Missing postbacks: changes impact.com's API reported, matched with the postbacks that arrived.

A change with no postback DELAY_ALERT_AFTER later is evidence in its brand's *missing* alert;
the postback arriving later records its real delay (and may resolve the alert); `backfill()`
applies changes that never got one as events whose source is `api`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from events import impact
from events.common.times import format_moment
from events.impact import Lifecycle, promises
from events.lifecycle import apply, rules
from events.models import Action, ActionEvent, AlertItem, AlertKind, ApiChange, Brand, DelayAlert, EventSource
from events.reporting import reports

from .state import Windows, active_alerts, recount, resolve_if_answered

MISSING_BATCH = 5000
# What matching reads of a postback entry.
RECEIPT_FIELDS = ("id", "kind", "changed_at", "received_at", *rules.COMPARED_VALUES)
# The API record's names for the values a postback's must agree with.
API_MONEY = {"amount": "Amount", "payout": "Payout", "delta_amount": "DeltaAmount", "delta_payout": "DeltaPayout"}


@dataclass
class Receipt:
    """What matching needs of a postback event (light to load by the thousand)."""

    id: int
    kind: str
    changed_at: datetime | None
    received_at: datetime
    status: str = ""
    amount: Decimal | None = None
    payout: Decimal | None = None
    delta_amount: Decimal | None = None
    delta_payout: Decimal | None = None


def api_values(change: ApiChange) -> dict:
    """The values the API record carries (its State, amounts and deltas), named as a postback's."""
    return record_values(change.payload, change.state)


def record_values(record: dict, state: str) -> dict:
    """An API record's state and money (unreadable amounts: None), named as a postback's values."""
    values: dict = {"status": state}
    for name, key in API_MONEY.items():
        text = str(record.get(key) or "").strip()
        try:
            values[name] = impact.parse_money(text) if text else None
        except impact.InvalidPayload:
            values[name] = None
    return values


def pair(changes: list[ApiChange], events: list, taken: set[int] = frozenset()) -> list[tuple[ApiChange, Receipt]]:
    """Which postback reports which change, for the changes and postbacks of one action (changes
    oldest first, postbacks in receipt order):
    - the postback that joined an entry backfilled from a change reports that change;
    - a postback with an impact-side time reports every change of its kind at that time (a reversal
      only a reversal), whatever values it carries;
    - a postback without one reports one change of its kind made before it arrived: one whose values
      (status, amounts, deltas) it carries, else the earliest. With several changes on one action the
      values tell them apart; `taken`: postbacks without a time already reporting another change."""
    pairs: list[tuple[ApiChange, Receipt]] = []
    waiting = list(changes)

    def answer(found: list[ApiChange], event) -> None:
        for change in found:
            pairs.append((change, event))
            waiting.remove(change)

    for event in events:
        answer([c for c in waiting if c.backfilled_event_id == event.id], event)
    for event in events:
        if event.changed_at is not None:
            # The change's identity, as a postback joining its backfilled entry decides it: its kind
            # and time, whatever values the postback carries.
            at_its_time = [c for c in waiting if rules.same_time(event.changed_at, c.changed_at)]
            answer([c for c in at_its_time if rules.kinds_agree(event.kind, c.kind)], event)
    answered = {event.id for _, event in pairs} | set(taken)
    untimed = [e for e in events if e.changed_at is None and e.id not in answered]
    for by_values in (True, False):
        for event in list(untimed):
            found = [c for c in waiting if c.kind == event.kind and event.received_at >= c.changed_at - rules.SAME_TIME]
            if by_values:
                values = {name: getattr(event, name) for name in rules.COMPARED_VALUES}
                found = [c for c in found if rules.values_agree(values, api_values(c))]
            if found:
                answer(found[:1], event)
                untimed.remove(event)
    return pairs


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
    if not waiting:
        return
    received: dict[str, list[ActionEvent]] = {}
    for event in events:
        received.setdefault(event.action.action_id, []).append(event)
    for action_id, changes in waiting.items():
        for change, event in pair(changes, received[action_id]):
            _answer(change, event)


def match_stored_changes(changes: list[ApiChange]) -> set[int]:
    """Match API changes with the postbacks already received; returns the ids of those matched."""
    if not changes:
        return set()
    ids = {c.action_id for c in changes}
    events: dict[str, list[Receipt]] = {}
    rows = (
        ActionEvent.objects.filter(action__action_id__in=ids, source=EventSource.POSTBACK)
        .order_by("received_at", "id")
        .values_list("action__action_id", *RECEIPT_FIELDS)
    )
    for action_id, *receipt in rows:
        events.setdefault(action_id, []).append(Receipt(*receipt))
    answering = ApiChange.objects.filter(action_id__in=ids, postback_event__isnull=False)
    taken = set(answering.values_list("postback_event_id", flat=True))
    by_action: dict[str, list[ApiChange]] = {}
    for change in sorted(changes, key=lambda c: (c.changed_at, c.pk)):
        by_action.setdefault(change.action_id, []).append(change)
    matched = set()
    for action_id, waiting in by_action.items():
        for change, event in pair(waiting, events.get(action_id, []), taken):
            _answer(change, event)
            matched.add(change.pk)
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
    waiting = list(waiting)
    # A postback may have come since the last look (or before the change was read): never a second entry.
    matched = match_stored_changes(waiting)
    for change in [c for c in waiting if c.pk not in matched]:
        with transaction.atomic():
            # A processor answers changes under the action's lock: a postback applied meanwhile wins.
            list(Action.objects.select_for_update().filter(action_id=change.action_id))
            if ApiChange.objects.filter(pk=change.pk, postback_event__isnull=False).exists():
                continue
            result = apply(postback_from_change(change), received_at=now, source=EventSource.API)
            # Not a postback: its "delay" would only say when we asked the API.
            ActionEvent.objects.filter(pk=result.event.pk).update(delay_seconds=None)
            ApiChange.objects.filter(pk=change.pk).update(backfilled_event=result.event)
            reports.refresh([result.event.action_id])  # money by status, the calendar: this change too
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
