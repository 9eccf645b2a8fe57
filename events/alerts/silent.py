"""Silent brands: a brand that usually sends postbacks has sent none for SILENT_BRAND_GAPS times
its usual gap."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction

from events.common.times import format_duration, format_moment
from events.impact import promises
from events.models import ActionEvent, AlertKind, Brand, DelayAlert, EventSource, sql

from .state import active_alert, is_expected, resolve

# How many recent postbacks tell a brand's usual gap, and how few are too few.
SILENT_SAMPLE = 50
SILENT_MIN_POSTBACKS = 10


def recent_receipts() -> dict[int, tuple[datetime, datetime, int]]:
    """{brand id: (newest, oldest, count)} over the brand's last SILENT_SAMPLE postbacks.

    PostgreSQL: one LATERAL query, an index range scan (event_brand_recv) per brand. SQLite: a loop.
    """
    if connection.vendor == "postgresql":
        return sql.recent_postbacks_per_brand(EventSource.POSTBACK, SILENT_SAMPLE)
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
            resolved += resolve(alert, now=now, note=f"postbacks again since {format_moment(newest)}")
            continue
        gap = usual_gap(newest, oldest, count)
        if alert is not None or gap is None:
            continue
        threshold = max(gap * settings.SILENT_BRAND_GAPS, promises.alert_after())
        if now - newest <= threshold:
            continue
        last = DelayAlert.objects.filter(brand_id=brand_id, kind=AlertKind.SILENT).order_by("-opened_at").first()
        if last is not None and last.since == newest:
            continue  # this silence was already reported (and resolved by someone)
        summary = (
            f"no postback since {format_moment(newest)}, usually one every {format_duration(int(gap.total_seconds()))}"
        )
        brand = Brand.objects.get(pk=brand_id)
        with transaction.atomic():
            active_alert(brand, AlertKind.SILENT, is_expected(newest, now), summary, now, since=newest)
        opened += 1
    return {"silent_opened": opened, "silent_resolved": resolved}
