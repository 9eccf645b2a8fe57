"""The alert state machine: open (or join) a brand's active alert, add evidence, acknowledge,
resolve; maintenance windows make an alert *expected*. Every state change writes an AlertChange
row and queues its notifications (outbox rows, sent by `notify`).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Max, OuterRef, Subquery
from django.utils import timezone

from events.common.times import format_duration
from events.models import (
    ACTIVE_STATUSES,
    AlertChange,
    AlertItem,
    AlertKind,
    AlertStatus,
    Brand,
    DelayAlert,
    MaintenanceWindow,
    Notification,
    NotificationChannel,
    NotificationReason,
)

logger = logging.getLogger(__name__)


class Windows:
    """Maintenance windows loaded once for a batch of overlap tests."""

    def __init__(self, start: datetime, end: datetime):
        self.spans = list(MaintenanceWindow.objects.overlapping(start, end).values_list("starts_at", "ends_at"))

    def overlap(self, start: datetime, end: datetime) -> bool:
        return any(s <= end and e >= start for s, e in self.spans)


def is_expected(start: datetime | None, end: datetime) -> bool:
    return start is not None and MaintenanceWindow.objects.overlapping(start, end).exists()


def record_change(alert: DelayAlert, from_status: str, to_status: str, now: datetime, user=None, note: str = ""):
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


def active_alert(
    brand: Brand | None, kind: str, expected: bool, summary: str, now: datetime, endpoint=None, **fields
) -> DelayAlert:
    """The brand's (or the forwarding endpoint's) active alert of this kind, locked; opened (with its
    change row) if there is none."""
    lookup = {"brand": brand, "endpoint": endpoint, "kind": kind, "expected": expected, "status__in": ACTIVE_STATUSES}
    alert = DelayAlert.objects.select_for_update().filter(**lookup).first()
    if alert is not None:
        return alert
    try:
        with transaction.atomic():
            alert = DelayAlert.objects.create(
                brand=brand,
                endpoint=endpoint,
                kind=kind,
                expected=expected,
                summary=summary[:500],
                opened_at=now,
                last_item_at=now,
                remind_at=next_reminder(now, kind),
                **fields,
            )
    except IntegrityError:  # another transaction opened it first (alert_one_active)
        return DelayAlert.objects.select_for_update().get(**lookup)
    note = "opened during a maintenance window: expected, not notified" if expected else ""
    record_change(alert, "", AlertStatus.OPEN, now, note=note)
    queue_notifications(alert, NotificationReason.OPENED, now)
    logger.warning("delay alert opened: %s alert %s for %s: %s", kind, alert.pk, brand, alert.summary)
    return alert


def next_reminder(now: datetime, kind: str) -> datetime | None:
    if not settings.ALERT_REPEAT_EVERY_MINUTES or kind == AlertKind.SILENT:  # silent alerts are softer
        return None
    return now + timedelta(minutes=settings.ALERT_REPEAT_EVERY_MINUTES)


def add_items(alert: DelayAlert, items: list[AlertItem], now: datetime) -> None:
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
        record_change(alert, from_status, to_status, now, user=user, note=note)
        if to_status == AlertStatus.RESOLVED:
            queue_notifications(alert, NotificationReason.RESOLVED, now)
    return True


def acknowledge(alert: DelayAlert, user=None, note: str = "", now: datetime | None = None) -> bool:
    return transition(alert, AlertStatus.ACKNOWLEDGED, now=now, user=user, note=note)


def resolve(alert: DelayAlert, user=None, note: str = "", now: datetime | None = None) -> bool:
    return transition(alert, AlertStatus.RESOLVED, now=now, user=user, note=note)


def resolve_if_answered(alert: DelayAlert, now: datetime) -> None:
    if not alert.active or alert.items.filter(received_at=None, backfilled_at=None).exists():
        return
    alert.refresh_from_db(fields=["max_delay_seconds"])
    resolve(
        alert, now=now, note=f"every change is accounted for; longest delay {format_duration(alert.max_delay_seconds)}"
    )


def active_alerts(kind: str, wanted: dict[tuple[int, bool], str], now: datetime) -> dict[tuple[int, bool], DelayAlert]:
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
                remind_at=next_reminder(now, kind),
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


def recount(alert_ids: list[int], now: datetime) -> None:
    """Item count and longest delay from the items themselves (one statement for every alert)."""
    items = AlertItem.objects.filter(alert=OuterRef("pk")).order_by().values("alert")
    DelayAlert.objects.filter(pk__in=alert_ids).update(
        item_count=Subquery(items.annotate(n=Count("id")).values("n")),
        max_delay_seconds=Subquery(items.annotate(m=Max("delay_seconds")).values("m")),
        last_item_at=now,
    )
