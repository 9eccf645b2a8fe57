"""A stalled processor: deliveries stored and not applied for longer than PROCESSING_STALL_SECONDS
(no processor running, or one that cannot keep up). One alert, about the installation itself (no
brand), open while it lasts and resolved once the backlog is fresh again."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction

from events.common.times import format_duration, format_moment
from events.models import AlertKind, DelayAlert, Delivery

from .state import active_alert, resolve


def stalled_since(now: datetime) -> tuple[int, datetime | None]:
    """(deliveries waiting, the oldest one's receipt) when processing is stalled, else (count, None)."""
    count, oldest = Delivery.objects.backlog()
    if oldest is None or now - oldest <= timedelta(seconds=settings.PROCESSING_STALL_SECONDS):
        return count, None
    return count, oldest


def check_processing(now: datetime) -> dict[str, int]:
    count, oldest = stalled_since(now)
    alert = DelayAlert.objects.active().filter(kind=AlertKind.STALLED).first()
    if oldest is None:
        if alert is not None:
            resolve(alert, now=now, note=f"processing caught up; {count} deliveries waiting at {format_moment(now)}")
        return {"processing_stalled": 0}
    summary = (
        f"{count} postbacks stored and not applied; the oldest since {format_moment(oldest)} "
        f"({format_duration((now - oldest).total_seconds())}): is `manage.py process_deliveries` running?"
    )
    if alert is None:
        with transaction.atomic():
            active_alert(None, AlertKind.STALLED, False, summary, now)
    else:  # it says how things stand now
        DelayAlert.objects.filter(pk=alert.pk).update(summary=summary[:500], last_item_at=now)
    return {"processing_stalled": 1}
