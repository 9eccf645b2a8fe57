"""The overview (`/`): a period's actions, payout, delays, ingest health, open alerts and chart;
while nothing has arrived yet, how to connect impact.com."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from events import impact
from events.models import Credential, Delivery, RefusedAttempt
from events.reporting import rollups

from .. import folding
from ..context_processors import active_alert_counts
from ..timezones import display_zone
from .common import build_charts, endpoint_url, period_of


@login_required
@require_GET
def overview(request):
    period, period_error = period_of(request)
    figures = rollups.figures(period.start, period.end, period.bucket, display_zone())
    rows = figures.rows
    summary = {**folding.summary(rows), **figures.delay_summary()}
    main_currency = folding.main_currency(rows)
    buckets = folding.per_bucket(rows, main_currency)
    deliveries = figures.deliveries
    last_received_at = Delivery.objects.last_received_at()
    pending, oldest_pending = Delivery.objects.backlog()
    now = timezone.now()
    context = {
        "period": period,
        "period_error": period_error,
        "summary": summary,
        "reversal_rate": summary["reversed"] / summary["tracked"] if summary["tracked"] else None,
        "money_cards": folding.money_by_currency(rows),
        "chart": build_charts(buckets, period.buckets(display_zone()), period.bucket, main_currency),
        "deliveries": deliveries,
        "problem_deliveries": deliveries.get("invalid", 0) + deliveries.get("failed", 0),
        "refused": RefusedAttempt.objects.in_period(period.start, period.end).count(),
        "last_received_at": last_received_at,
        "pending": pending,
        "pending_age": (now - oldest_pending).total_seconds() if oldest_pending else None,
        "processing_stalled": oldest_pending is not None
        and (now - oldest_pending).total_seconds() > settings.PROCESSING_STALL_SECONDS,
        "open_alerts": _open_alerts(request),
        "late_minutes": settings.DELAY_LATE_AFTER_MINUTES,
        "alert_minutes": settings.DELAY_ALERT_AFTER_MINUTES,
    }
    if last_received_at is None:
        context.update(_setup_help())
    return render(request, "dashboard/overview.html", context)


def _open_alerts(request) -> int:
    """Delay alerts not resolved yet (open or acknowledged); the banner reuses the same query."""
    counts = active_alert_counts(request)
    return counts["unexpected"] + counts["expected"]


def _setup_help() -> dict:
    endpoint = endpoint_url()
    return {
        "empty": True,
        "url_template": impact.url_template(endpoint),
        "json_template": impact.json_body_template(),
        "endpoint": endpoint,
        "credentials": Credential.objects.usable().count(),
    }
