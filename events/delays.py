"""Delay alerts: late postbacks, missing postbacks (reconciliation), silent brands.

- `after_apply(result)` is called by the ingest pipeline right after lifecycle.apply, inside
  its transaction: a late postback joins its brand's *late* alert, and a postback that answers
  a change the API reported as missing records its real delay (and may resolve the alert).
- `reconcile(account, client)` reads ActionUpdates and Actions from impact.com's API and stores
  the changes (`ApiChange`), matched against the postbacks already received.
- `check()` is one pass of the watcher without the API: missing postbacks past their deadline,
  late alerts that went quiet, silent brands, reminders. `send_due_notifications()` sends.
- `backfill()` applies changes that never got a postback as events whose source is `api`.

Every state change of an alert is an `AlertChange` row; notifications are outbox rows claimed
with a guarded update, so several watchers never send one twice.
"""

from __future__ import annotations

import json
import logging
import socket
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Count, F, Max, OuterRef, Q, Subquery, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from . import impact, impact_api, lifecycle, rollups, rows
from .models import (
    ACTIVE_STATUSES,
    ActionEvent,
    AlertChange,
    AlertItem,
    AlertKind,
    AlertStatus,
    ApiChange,
    Brand,
    DelayAlert,
    EventKind,
    EventSource,
    ImpactAccount,
    MaintenanceWindow,
    Notification,
    NotificationChannel,
    NotificationReason,
    Outcome,
    WatcherHeartbeat,
)

logger = logging.getLogger(__name__)

# Two impact-side times closer than this are the same change (the API and postbacks round differently).
SAME_TIME = timedelta(seconds=1)
# Silent brands: how many recent postbacks tell a brand's usual gap, and how few are too few.
SILENT_SAMPLE = 50
SILENT_MIN_POSTBACKS = 10
# Reconciliation re-reads this much before its cursor: the API may list a change late.
RECONCILE_OVERLAP = timedelta(minutes=30)
MAX_API_WINDOW = timedelta(days=45)  # impact.com: StartDate and EndDate at most 45 days apart
# Notifications: a claim lasts this long (a crashed sender's claim expires), retries back off.
CLAIM_LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 8
MISSING_BATCH = 5000
WATCHER = "watch_delays"
LOCK_KEY = zlib.crc32(b"events.watch_delays")


def alert_after() -> timedelta:
    return timedelta(minutes=settings.DELAY_ALERT_AFTER_MINUTES)


def late_quiet() -> timedelta:
    """A late alert resolves itself once no late postback has arrived for this long."""
    return timedelta(minutes=settings.DELAY_LATE_AFTER_MINUTES)


def fmt(moment: datetime | None) -> str:
    return "—" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_delay(seconds: int | None) -> str:
    if seconds is None:
        return "—"
    minutes, _ = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


# --- Maintenance windows ---------------------------------------------------------------


class Windows:
    """Maintenance windows loaded once for a batch of overlap tests."""

    def __init__(self, start: datetime, end: datetime):
        self.spans = list(MaintenanceWindow.objects.overlapping(start, end).values_list("starts_at", "ends_at"))

    def overlap(self, start: datetime, end: datetime) -> bool:
        return any(s <= end and e >= start for s, e in self.spans)


def is_expected(start: datetime | None, end: datetime) -> bool:
    return start is not None and MaintenanceWindow.objects.overlapping(start, end).exists()


# --- Opening, changing and notifying ----------------------------------------------------


def _record_change(alert: DelayAlert, from_status: str, to_status: str, now: datetime, user=None, note: str = ""):
    AlertChange.objects.create(alert=alert, at=now, from_status=from_status, to_status=to_status, user=user, note=note)


def notifications_for(alert: DelayAlert, reason: str, now: datetime) -> list[Notification]:
    """One outbox row per configured channel (unsaved); expected alerts are shown, never notified."""
    if alert.expected:
        return []
    channels = []
    if settings.ALERT_EMAILS:
        channels.append(NotificationChannel.EMAIL)
    if settings.ALERT_WEBHOOK_URL:
        channels.append(NotificationChannel.WEBHOOK)
    return [Notification(alert=alert, reason=reason, channel=c, created_at=now, next_attempt_at=now) for c in channels]


def queue_notifications(alert: DelayAlert, reason: str, now: datetime) -> int:
    return len(Notification.objects.bulk_create(notifications_for(alert, reason, now)))


def _active_alert(brand: Brand, kind: str, expected: bool, summary: str, now: datetime, **fields) -> DelayAlert:
    """The brand's active alert of this kind, locked; opened (with its change row) if there is none."""
    lookup = {"brand": brand, "kind": kind, "expected": expected, "status__in": ACTIVE_STATUSES}
    alert = DelayAlert.objects.select_for_update().filter(**lookup).first()
    if alert is not None:
        return alert
    try:
        with transaction.atomic():
            alert = DelayAlert.objects.create(
                brand=brand,
                kind=kind,
                expected=expected,
                summary=summary[:500],
                opened_at=now,
                last_item_at=now,
                remind_at=_next_reminder(now, kind),
                **fields,
            )
    except IntegrityError:  # another transaction opened it first (alert_one_active)
        return DelayAlert.objects.select_for_update().get(**lookup)
    note = "opened during a maintenance window: expected, not notified" if expected else ""
    _record_change(alert, "", AlertStatus.OPEN, now, note=note)
    queue_notifications(alert, NotificationReason.OPENED, now)
    logger.warning("delay alert opened: %s", alert.title)
    return alert


def _next_reminder(now: datetime, kind: str) -> datetime | None:
    if not settings.ALERT_REPEAT_EVERY_MINUTES or kind == AlertKind.SILENT:  # silent alerts are softer
        return None
    return now + timedelta(minutes=settings.ALERT_REPEAT_EVERY_MINUTES)


def _add_items(alert: DelayAlert, items: list[AlertItem], now: datetime) -> None:
    for item in items:
        item.alert = alert
        item.created_at = now
    AlertItem.objects.bulk_create(items)
    delays = [i.delay_seconds for i in items if i.delay_seconds is not None]
    updates = {"item_count": F("item_count") + len(items), "last_item_at": now}
    if delays and (alert.max_delay_seconds is None or max(delays) > alert.max_delay_seconds):
        updates["max_delay_seconds"] = max(delays)
    DelayAlert.objects.filter(pk=alert.pk).update(**updates)


def transition(alert: DelayAlert, to_status: str, *, now: datetime | None = None, user=None, note: str = "") -> bool:
    """Acknowledge or resolve an alert; False when it is not possible from its current state."""
    now = now or timezone.now()
    with transaction.atomic():
        alert = DelayAlert.objects.select_for_update().get(pk=alert.pk)
        allowed = {
            AlertStatus.OPEN: (AlertStatus.ACKNOWLEDGED, AlertStatus.RESOLVED),
            AlertStatus.ACKNOWLEDGED: (AlertStatus.RESOLVED,),
        }.get(alert.status, ())
        if to_status not in allowed:
            return False
        from_status = alert.status
        alert.status = to_status
        if to_status == AlertStatus.ACKNOWLEDGED:
            alert.acknowledged_at = now
        else:
            alert.resolved_at = now
        alert.remind_at = None  # someone is on it, or it is over
        alert.save(update_fields=["status", "acknowledged_at", "resolved_at", "remind_at"])
        _record_change(alert, from_status, to_status, now, user=user, note=note)
        if to_status == AlertStatus.RESOLVED:
            queue_notifications(alert, NotificationReason.RESOLVED, now)
    return True


def acknowledge(alert: DelayAlert, user=None, note: str = "", now: datetime | None = None) -> bool:
    return transition(alert, AlertStatus.ACKNOWLEDGED, now=now, user=user, note=note)


def resolve(alert: DelayAlert, user=None, note: str = "", now: datetime | None = None) -> bool:
    return transition(alert, AlertStatus.RESOLVED, now=now, user=user, note=note)


# --- Late postbacks (called from the ingest pipeline) ------------------------------------


def after_apply(result: lifecycle.Result) -> None:
    """Called by ingest.process right after lifecycle.apply, inside its transaction."""
    event = result.event
    if result.outcome != Outcome.APPLIED or event.source != EventSource.POSTBACK:
        return
    answer_waiting_changes(event)
    # Already in an alert: a replay, or the answer to a missing change (that alert records its delay).
    if _late(event) and not AlertItem.objects.filter(event=event).exists():
        record_late(event)


def nothing_after(event: ActionEvent) -> tuple[str, list] | None:
    """For lifecycle.create() (an action's first postback, written without a transaction): SQL true
    while after_apply() would do nothing for `event` (no API change waits for its postback), or
    None if it would do something whatever the database holds (the postback is late). When it
    would, the postback goes through apply() and after_apply() in one transaction instead."""
    if _late(event):
        return None
    sql = f"NOT EXISTS (SELECT 1 FROM {ApiChange._meta.db_table} WHERE action_id = %s AND postback_event_id IS NULL)"  # noqa: S608
    return sql, [event.action.action_id]


def _late(event: ActionEvent) -> bool:
    return event.delay_seconds is not None and event.delay_seconds > alert_after().total_seconds()


def record_late(event: ActionEvent, now: datetime | None = None) -> DelayAlert:
    """A postback arrived over DELAY_ALERT_AFTER after its change: add it to its brand's late alert."""
    now = now or event.received_at
    expected = is_expected(event.changed_at, event.received_at)
    summary = (
        f"action {event.action.action_id} {event.kind} at {fmt(event.changed_at)}, "
        f"postback {fmt_delay(event.delay_seconds)} late"
    )
    alert = _active_alert(event.brand, AlertKind.LATE, expected, summary, now)
    item = AlertItem(
        action_id=event.action.action_id,
        change=event.kind,
        status=event.status,
        changed_at=event.changed_at,
        received_at=event.received_at,
        delay_seconds=event.delay_seconds,
        event=event,
    )
    _add_items(alert, [item], now)
    return alert


# --- Matching API changes with postbacks ------------------------------------------------


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
    _resolve_if_answered(alert, event.received_at)


def _resolve_if_answered(alert: DelayAlert, now: datetime) -> None:
    if not alert.active or alert.items.filter(received_at=None, backfilled_at=None).exists():
        return
    alert.refresh_from_db(fields=["max_delay_seconds"])
    resolve(alert, now=now, note=f"every change is accounted for; longest delay {fmt_delay(alert.max_delay_seconds)}")


def answer_waiting_changes(event: ActionEvent) -> None:
    """A postback arrived: does it answer a change the API reported and we are waiting for?"""
    action_id = event.action.action_id
    # Nearly always none (only the reconciler records API changes): one light query to say so.
    if not rows.exists(ApiChange, action_id=action_id, postback_event=None):
        return
    for change in ApiChange.objects.filter(action_id=action_id, postback_event=None).order_by("changed_at"):
        if matches(change, event):
            _answer(change, event)
            return


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


# --- Reconciliation with impact.com's API -----------------------------------------------


@dataclass
class ReconcileReport:
    fetched: int = 0
    stored: int = 0
    matched: int = 0
    requests: int = 0
    window: tuple[datetime, datetime] | None = None
    error: str = ""
    budget: str = ""

    def __str__(self) -> str:
        start, end = self.window or (None, None)
        text = (
            f"read {self.fetched} changes from {fmt(start)} to {fmt(end)} in {self.requests} requests; "
            f"{self.stored} new, {self.matched} of them already answered by a postback. Budget: {self.budget}"
        )
        return f"{text}. Stopped: {self.error}" if self.error else text


def _record_value(record: dict, name: str) -> str:
    value = record.get(name)
    return "" if value is None else str(value).strip()


def _api_date(record: dict, name: str) -> datetime | None:
    text = _record_value(record, name)
    if not text:
        return None
    try:
        return impact.parse_date(text, name)
    except impact.InvalidPayload:
        return None


def change_from_update(record: dict) -> ApiChange | None:
    """An ActionUpdates record: modified, or reversed when its State is REVERSED."""
    changed_at = _api_date(record, "UpdateDate")
    action_id = _record_value(record, "ActionId") or _record_value(record, "Id")
    if changed_at is None or not action_id:
        return None
    state = _record_value(record, "State").upper()
    kind = EventKind.REVERSED if state == "REVERSED" else EventKind.MODIFIED
    return _change(record, action_id, kind, state, changed_at)


def change_from_action(record: dict) -> ApiChange | None:
    """An Actions record: the action was tracked at its CreationDate."""
    changed_at = _api_date(record, "CreationDate")
    action_id = _record_value(record, "Id") or _record_value(record, "ActionId")
    if changed_at is None or not action_id:
        return None
    return _change(record, action_id, EventKind.TRACKED, _record_value(record, "State").upper(), changed_at)


def _change(record: dict, action_id: str, kind: str, state: str, changed_at: datetime) -> ApiChange:
    return ApiChange(
        action_id=action_id[:255],
        campaign_id=_record_value(record, "CampaignId")[:255],
        campaign_name=_record_value(record, "CampaignName")[:255],
        kind=kind,
        state=state[:40],
        changed_at=changed_at,
        payload={k: v for k, v in record.items() if isinstance(v, str | int | float | type(None))},
    )


def reconcile(account: ImpactAccount, client: impact_api.ImpactClient, now: datetime | None = None) -> ReconcileReport:
    """Read ActionUpdates and Actions changed since the cursor, store them, match them with postbacks."""
    now = now or timezone.now()
    lookback = now - timedelta(hours=settings.RECONCILE_LOOKBACK_HOURS)
    start = max(account.synced_through or lookback, now - MAX_API_WINDOW)
    report = ReconcileReport(window=(start, now))
    params = {"StartDate": impact_api.api_time(start), "EndDate": impact_api.api_time(now)}
    changes: list[ApiChange] = []
    complete = False
    try:
        for record in client.records("ActionUpdates", params):
            change = change_from_update(record)
            if change is not None:
                changes.append(change)
        for record in client.records("Actions", params):
            change = change_from_action(record)
            if change is not None and change.changed_at >= start - RECONCILE_OVERLAP:
                changes.append(change)
        complete = True
    except impact_api.ApiError as exc:
        report.error = str(exc)
        if isinstance(exc, impact_api.RateLimited):
            account.paused_until = now + timedelta(seconds=exc.retry_after)
    report.fetched = len(changes)
    report.requests = client.requests_made
    with transaction.atomic():
        ids = {c.action_id for c in changes}
        known = (
            set(ApiChange.objects.filter(action_id__in=ids).values_list("action_id", "kind", "changed_at"))
            if ids
            else set()
        )
        new, seen = [], set()
        for change in changes:
            key = (change.action_id, change.kind, change.changed_at)
            if key in known or key in seen:
                continue
            seen.add(key)
            change.account = account
            change.fetched_at = now
            new.append(change)
        ApiChange.objects.bulk_create(new, ignore_conflicts=True, batch_size=1000)
        report.stored = len(new)
        stored = [
            c
            for c in ApiChange.objects.filter(action_id__in={c.action_id for c in new}, postback_event=None)
            if (c.action_id, c.kind, c.changed_at) in seen
        ]
        report.matched = len(match_stored_changes(stored))
        account.last_reconciled_at = now
        if complete:
            account.synced_through = max(now - RECONCILE_OVERLAP, account.synced_through or start)
        report.budget = client.budget.describe(client.rate_remaining)
        account.last_result = str(report)
        account.last_error = report.error
        account.save(
            update_fields=["last_reconciled_at", "synced_through", "last_result", "last_error", "paused_until"]
        )
    return report


def reconcile_due(account: ImpactAccount, now: datetime) -> bool:
    if account.paused_until and account.paused_until > now:
        return False
    every = timedelta(minutes=settings.RECONCILE_EVERY_MINUTES)
    return account.last_reconciled_at is None or account.last_reconciled_at <= now - every


def client_for(account: ImpactAccount, **kwargs) -> impact_api.ImpactClient:
    return impact_api.ImpactClient(
        account.account_sid,
        account.auth_token,
        base_url=settings.IMPACT_API_BASE_URL,
        budget=AccountBudget(account, settings.IMPACT_API_REQUESTS_PER_HOUR, kwargs.pop("clock", timezone.now)),
        timeout=settings.IMPACT_API_TIMEOUT,
        **kwargs,
    )


class AccountBudget(impact_api.Budget):
    """At most `limit` requests per clock hour for the account, counted in the database, so every
    watcher and every `reconcile_impact` run share it (taken with a guarded update)."""

    def __init__(self, account: ImpactAccount, limit: int, clock: Callable[[], datetime] = timezone.now):
        self.account = account
        self.limit = limit
        self.clock = clock

    def _hour(self) -> datetime:
        return self.clock().replace(minute=0, second=0, microsecond=0)

    def take(self) -> bool:
        hour = self._hour()
        accounts = ImpactAccount.objects.filter(pk=self.account.pk)
        if accounts.filter(Q(budget_hour__lt=hour) | Q(budget_hour=None)).update(budget_hour=hour, budget_used=1):
            return True
        within = accounts.filter(budget_hour=hour, budget_used__lt=self.limit)
        return bool(within.update(budget_used=F("budget_used") + 1))

    def used(self) -> int:
        row = ImpactAccount.objects.filter(pk=self.account.pk).values_list("budget_hour", "budget_used").first()
        return row[1] if row and row[0] == self._hour() else 0

    def describe(self, rate_remaining: int | None = None) -> str:
        reset = self._hour() + timedelta(hours=1)
        text = f"{self.used()} of {self.limit} requests used this hour (resets {reset:%H:%M} UTC)"
        if rate_remaining is not None:
            ImpactAccount.objects.filter(pk=self.account.pk).update(rate_remaining=rate_remaining)
            text += f"; impact.com says {rate_remaining} remaining"
        return text


# --- Missing postbacks, silent brands, reminders: the check pass -------------------------------


def _brands(campaigns: dict[str, str]) -> dict[str, Brand]:
    """{campaign_id: Brand} for the campaigns ({campaign_id: name}), creating the unknown ones."""
    found = {b.campaign_id: b for b in Brand.objects.filter(campaign_id__in=campaigns)}
    missing = [Brand(campaign_id=c, name=n) for c, n in campaigns.items() if c not in found]
    if missing:
        Brand.objects.bulk_create(missing, ignore_conflicts=True)
        found = {b.campaign_id: b for b in Brand.objects.filter(campaign_id__in=campaigns)}
    return found


def _active_alerts(kind: str, wanted: dict[tuple[int, bool], str], now: datetime) -> dict[tuple[int, bool], DelayAlert]:
    """The active alerts of this kind for (brand id, expected) keys, locked; opened where there is none.

    Batched: a handful of queries whatever the number of brands. Call inside a transaction.
    """

    def active():
        alerts = DelayAlert.objects.select_for_update().filter(
            kind=kind, status__in=ACTIVE_STATUSES, brand_id__in={brand for brand, _ in wanted}
        )
        return {(a.brand_id, a.expected): a for a in alerts}

    found = active()
    missing = [key for key in wanted if key not in found]
    if not missing:
        return found
    DelayAlert.objects.bulk_create(
        [
            DelayAlert(
                brand_id=brand,
                kind=kind,
                expected=expected,
                summary=wanted[(brand, expected)][:500],
                opened_at=now,
                last_item_at=now,
                remind_at=_next_reminder(now, kind),
            )
            for brand, expected in missing
        ],
        ignore_conflicts=True,  # alert_one_active: another transaction may have opened one
    )
    found = active()
    candidates = [found[key] for key in missing if key in found]
    # Ours are those without an "opened" change yet (another transaction commits its alert with it).
    recorded = set(AlertChange.objects.filter(alert__in=candidates).order_by().values_list("alert_id", flat=True))
    opened = [a for a in candidates if a.pk not in recorded]
    AlertChange.objects.bulk_create(
        [
            AlertChange(
                alert=a,
                at=now,
                to_status=AlertStatus.OPEN,
                note="opened during a maintenance window: expected, not notified" if a.expected else "",
            )
            for a in opened
        ]
    )
    Notification.objects.bulk_create(
        [n for alert in opened for n in notifications_for(alert, NotificationReason.OPENED, now)]
    )
    for alert in opened:
        logger.warning("delay alert opened: %s alert %s for brand %s", alert.kind, alert.pk, alert.brand_id)
    return found


def _recount(alert_ids: list[int], now: datetime) -> None:
    """Item count and longest delay from the items themselves (one statement for every alert)."""
    items = AlertItem.objects.filter(alert=OuterRef("pk")).order_by().values("alert")
    DelayAlert.objects.filter(pk__in=alert_ids).update(
        item_count=Subquery(items.annotate(n=Count("id")).values("n")),
        max_delay_seconds=Subquery(items.annotate(m=Max("delay_seconds")).values("m")),
        last_item_at=now,
    )


def open_missing(now: datetime) -> int:
    """Changes the API reported with no postback DELAY_ALERT_AFTER later: one item each, grouped per brand."""
    deadline = now - alert_after()
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
            key: f"no postback for action {c[0].action_id} {c[0].kind} at {fmt(c[0].changed_at)}"
            for key, c in groups.items()
        }
        alerts = _active_alerts(AlertKind.MISSING, summaries, now)
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
        _recount([alerts[key].pk for key in groups], now)
    return len(claimed)


def resolve_quiet_late(now: datetime) -> int:
    """Late alerts with no new late postback for a while: postbacks are on time again."""
    resolved = 0
    quiet = DelayAlert.objects.active().filter(kind=AlertKind.LATE, last_item_at__lte=now - late_quiet())
    for alert in quiet:
        note = f"no late postback since {fmt(alert.last_item_at)}; longest delay {fmt_delay(alert.max_delay_seconds)}"
        resolved += resolve(alert, now=now, note=note)
    return resolved


def recent_receipts() -> dict[int, tuple[datetime, datetime, int]]:
    """{brand id: (newest, oldest, count)} over the brand's last SILENT_SAMPLE postbacks.

    PostgreSQL: one LATERAL query, an index range scan (event_brand_recv) per brand. SQLite: a loop.
    """
    if connection.vendor == "postgresql":
        sql = f"""
            SELECT b.id, max(x.received_at), min(x.received_at), count(*) FROM {Brand._meta.db_table} b
            CROSS JOIN LATERAL (
                SELECT e.received_at FROM {ActionEvent._meta.db_table} e
                WHERE e.brand_id = b.id AND e.source = %s
                ORDER BY e.received_at DESC, e.id DESC LIMIT %s
            ) x
            GROUP BY b.id"""  # noqa: S608 - table names from the models
        with connection.cursor() as cursor:
            cursor.execute(sql, [EventSource.POSTBACK, SILENT_SAMPLE])
            return {brand_id: (newest, oldest, n) for brand_id, newest, oldest, n in cursor.fetchall()}
    receipts = {}
    for brand_id in Brand.objects.values_list("id", flat=True):
        received = list(
            ActionEvent.objects.filter(brand_id=brand_id, source=EventSource.POSTBACK)
            .order_by("-received_at", "-id")
            .values_list("received_at", flat=True)[:SILENT_SAMPLE]
        )
        if received:
            receipts[brand_id] = (received[0], received[-1], len(received))
    return receipts


def usual_gap(newest: datetime, oldest: datetime, count: int) -> timedelta | None:
    """Mean gap between a brand's recent postbacks; None when there are too few to tell."""
    if count < SILENT_MIN_POSTBACKS:
        return None
    return (newest - oldest) / (count - 1)


def check_silent(now: datetime) -> dict[str, int]:
    """Brands whose usual gap is known and that sent nothing for SILENT_BRAND_GAPS times it."""
    opened = resolved = 0
    active = {a.brand_id: a for a in DelayAlert.objects.active().filter(kind=AlertKind.SILENT)}
    for brand_id, (newest, oldest, count) in recent_receipts().items():
        alert = active.get(brand_id)
        if alert is not None and newest > alert.since:
            resolved += resolve(alert, now=now, note=f"postbacks again since {fmt(newest)}")
            continue
        gap = usual_gap(newest, oldest, count)
        if alert is not None or gap is None:
            continue
        threshold = max(gap * settings.SILENT_BRAND_GAPS, alert_after())
        if now - newest <= threshold:
            continue
        last = DelayAlert.objects.filter(brand_id=brand_id, kind=AlertKind.SILENT).order_by("-opened_at").first()
        if last is not None and last.since == newest:
            continue  # this silence was already reported (and resolved by someone)
        summary = f"no postback since {fmt(newest)}, usually one every {fmt_delay(int(gap.total_seconds()))}"
        brand = Brand.objects.get(pk=brand_id)
        with transaction.atomic():
            _active_alert(brand, AlertKind.SILENT, is_expected(newest, now), summary, now, since=newest)
        opened += 1
    return {"silent_opened": opened, "silent_resolved": resolved}


def queue_reminders(now: datetime) -> int:
    """Alerts still open after ALERT_REPEAT_EVERY: remind (claimed by moving remind_at, guarded)."""
    if not settings.ALERT_REPEAT_EVERY_MINUTES:
        return 0
    every = timedelta(minutes=settings.ALERT_REPEAT_EVERY_MINUTES)
    count = 0
    due = DelayAlert.objects.filter(status=AlertStatus.OPEN, expected=False, remind_at__lte=now)
    for alert in due:
        with transaction.atomic():
            if DelayAlert.objects.filter(pk=alert.pk, remind_at=alert.remind_at).update(remind_at=now + every):
                count += queue_notifications(alert, NotificationReason.REMINDER, now) > 0
    return count


def check(now: datetime | None = None) -> dict[str, int]:
    """One full pass without the API."""
    now = now or timezone.now()
    summary = {"missing": open_missing(now), "late_resolved": resolve_quiet_late(now)}
    summary.update(check_silent(now))
    summary["reminders"] = queue_reminders(now)
    return summary


# --- Backfill ------------------------------------------------------------------------------


def backfill(now: datetime | None = None, limit: int = 10_000) -> int:
    """Apply changes that never got a postback as events with source `api` (never taken for postbacks)."""
    now = now or timezone.now()
    count = 0
    waiting = ApiChange.objects.filter(
        postback_event=None, backfilled_event=None, changed_at__lte=now - alert_after()
    ).order_by("changed_at")[:limit]
    for change in waiting:
        with transaction.atomic():
            result = lifecycle.apply(postback_from_change(change), received_at=now, source=EventSource.API)
            # Not a postback: its "delay" would only say when we asked the API.
            ActionEvent.objects.filter(pk=result.event.pk).update(delay_seconds=None)
            ApiChange.objects.filter(pk=change.pk).update(backfilled_event=result.event)
            item = AlertItem.objects.filter(api_change=change).select_related("alert").first()
            if item is not None:
                AlertItem.objects.filter(pk=item.pk).update(backfilled_at=now)
                _resolve_if_answered(item.alert, now)
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
    if change.kind != EventKind.TRACKED:
        pairs.append(("UpdateDate", change.changed_at.isoformat()))
    postback = impact.normalise(pairs)
    postback.fields["action_id"] = change.action_id
    return postback


# --- Sending -----------------------------------------------------------------------------------


def message(alert: DelayAlert, reason: str, items: list[AlertItem] | None = None) -> tuple[str, str]:
    """Subject and body of a notification: what support and the team need to act."""
    verb = {"opened": "OPEN", "resolved": "RESOLVED", "reminder": "STILL OPEN"}[reason]
    subject = f"[{verb}] {alert.title}"[:200]
    url = f"{settings.PUBLIC_URL}/alerts/{alert.pk}/"
    lines = [subject, "", f"Opened {fmt(alert.opened_at)}; {alert.item_count} change(s)."]
    if alert.max_delay_seconds is not None:
        lines.append(f"Longest delay: {fmt_delay(alert.max_delay_seconds)}.")
    if alert.resolved_at:
        lines.append(f"Resolved {fmt(alert.resolved_at)}.")
    for item in items if items is not None else alert.items.all()[:10]:
        received = fmt(item.received_at) if item.received_at else "no postback"
        lines.append(f"- action {item.action_id} {item.change} at {fmt(item.changed_at)}: {received}")
    lines += ["", f"Evidence and CSV: {url}"]
    return subject, "\n".join(lines)


def _send_email(alert: DelayAlert, reason: str, items: list[AlertItem] | None = None) -> None:
    subject, body = message(alert, reason, items)
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, settings.ALERT_EMAILS, fail_silently=False)


def _send_webhook(alert: DelayAlert, reason: str, items: list[AlertItem] | None = None) -> None:
    _subject, body = message(alert, reason, items)
    data = json.dumps({"text": body}).encode()
    request = urllib.request.Request(  # noqa: S310 - the URL is a setting checked to be http(s)
        settings.ALERT_WEBHOOK_URL, data=data, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        if not 200 <= response.status < 300:
            raise OSError(f"webhook answered {response.status}")


SENDERS: dict[str, Callable[..., None]] = {
    NotificationChannel.EMAIL: _send_email,
    NotificationChannel.WEBHOOK: _send_webhook,
}


def backoff(attempts: int) -> timedelta:
    return timedelta(minutes=min(2 ** (attempts - 1), 60))


def send_due_notifications(now: datetime | None = None, limit: int = 100) -> dict[str, int]:
    """Send what is due; each row is claimed with a guarded update first, so it goes out once."""
    now = now or timezone.now()
    sent: list[int] = []
    failed = 0
    due = list(
        Notification.objects.filter(sent_at=None, gave_up=False, next_attempt_at__lte=now)
        .select_related("alert__brand")
        .order_by("next_attempt_at")[:limit]
    )
    # The first items of every alert concerned, in one query.
    first_items: dict[int, list[AlertItem]] = {}
    rank = Window(RowNumber(), partition_by=F("alert_id"), order_by=[F("changed_at").asc(), F("id").asc()])
    ranked = AlertItem.objects.filter(alert_id__in={n.alert_id for n in due}).annotate(rank=rank)
    for item in ranked.filter(rank__lte=10).order_by("alert_id", "rank"):
        first_items.setdefault(item.alert_id, []).append(item)
    for notification in due:
        claimed = Notification.objects.filter(
            id=notification.id, sent_at=None, next_attempt_at=notification.next_attempt_at
        ).update(next_attempt_at=now + CLAIM_LEASE, attempts=F("attempts") + 1)
        if not claimed:
            continue  # another watcher has it
        attempts = notification.attempts + 1
        alert = notification.alert
        try:
            SENDERS[notification.channel](alert, notification.reason, first_items.get(alert.pk, []))
        except (OSError, urllib.error.URLError, ValueError) as exc:
            failed += 1
            error = f"attempt {attempts} at {fmt(now)}: {type(exc).__name__}: {exc}"[:2000]
            logger.warning("notification %s failed: %s", notification.pk, error)
            Notification.objects.filter(pk=notification.pk).update(
                last_error=error, next_attempt_at=now + backoff(attempts), gave_up=attempts >= MAX_ATTEMPTS
            )
            continue
        sent.append(notification.pk)
    Notification.objects.filter(pk__in=sent).update(sent_at=now, last_error="")
    return {"sent": len(sent), "failed": failed}


# --- The watcher -------------------------------------------------------------------------------


@contextmanager
def advisory_lock(key: int = LOCK_KEY) -> Iterator[bool]:
    """PostgreSQL session advisory lock (one watcher works at a time); always granted on SQLite."""
    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        got = cursor.fetchone()[0]
    try:
        yield got
    finally:
        if got:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


def heartbeat(now: datetime, summary: dict, error: str = "") -> None:
    import os

    WatcherHeartbeat.objects.update_or_create(
        name=WATCHER,
        defaults={
            "last_run_at": now,
            "host": socket.gethostname()[:255],
            "pid": os.getpid(),
            "summary": summary,
            "last_error": error,
        },
    )


@dataclass
class Watcher:
    """One pass: reconcile (when an account is configured and it is due), check, notify."""

    clock: Callable[[], datetime] = timezone.now
    sleep: Callable[[float], None] | None = None  # for Retry-After waits in the API client
    client_factory: Callable[..., impact_api.ImpactClient] = client_for
    log: Callable[[str], None] = logger.info
    passes: int = 0
    last_summary: dict = field(default_factory=dict)

    def run_pass(self) -> dict:
        now = self.clock()
        summary: dict = {}
        error = ""
        for account in ImpactAccount.objects.filter(active=True):
            if reconcile_due(account, now):
                kwargs = {"clock": self.clock}
                if self.sleep is not None:
                    kwargs["sleep"] = self.sleep
                try:
                    report = reconcile(account, self.client_factory(account, **kwargs), now)
                except DatabaseError:
                    raise
                except Exception as exc:  # a bug in reconciliation must not stop the checks
                    logger.exception("reconciliation of %s failed", account)
                    error = f"reconcile {account.account_sid}: {type(exc).__name__}: {exc}"
                    summary[f"reconcile {account.account_sid}"] = error
                    continue
                summary[f"reconcile {account.account_sid}"] = str(report)
                error = report.error or error
                self.log(f"reconcile {account}: {report}")
        summary.update(check(now))
        summary.update(send_due_notifications(now))
        summary["rollups counted"] = rollups.warm(now)  # the dashboard's first view of the day stays fast
        heartbeat(now, summary, error)
        self.passes += 1
        self.last_summary = summary
        return summary
