"""The overview (`/`): a period's actions, payout, delays, ingest health, open alerts and chart;
while nothing has arrived yet, how to connect impact.com."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from events import impact
from events.models import Action, Credential, Delivery, RefusedAttempt
from events.reporting import rollups

from .. import folding
from ..context_processors import active_alert_counts
from ..timezones import display_zone
from .common import build_charts, endpoint_url, period_of
from .reports import money_by_status


@login_required
@require_GET
def overview(request):
    period, period_error = period_of(request)
    figures = rollups.figures(period.start, period.end, period.bucket, display_zone())
    rows = figures.rows
    summary = {**folding.summary(rows), **figures.delay_summary()}
    money_cards = folding.money_by_currency(rows)
    currencies = [card["currency"] for card in money_cards]
    # The chart's money is in one currency: the one asked for, else the busiest.
    chart_currency = request.GET.get("currency") if request.GET.get("currency") in currencies else None
    chart_currency = chart_currency or folding.main_currency(rows)
    buckets = folding.per_bucket(rows, chart_currency)
    deliveries = figures.deliveries
    last_received_at = Delivery.objects.last_received_at()
    pending, oldest_pending = Delivery.objects.backlog()
    now = timezone.now()
    reversed_by_now = Action.objects.reversed_by_now(period.start, period.end).count()
    context = {
        "period": period,
        "period_error": period_error,
        "summary": summary,
        "reversed_by_now": reversed_by_now,
        "reversed_share": folding.share(reversed_by_now, summary["tracked"]),
        "money_cards": money_cards,
        "chart": build_charts(buckets, period.buckets(display_zone()), period.bucket, chart_currency),
        "chart_currencies": [(c, _with(request, currency=c)) for c in currencies if c] if len(currencies) > 1 else [],
        "keep_query": urlencode({k: v for k, v in request.GET.items() if k == "currency"}),
        "keep_pairs": [(k, v) for k, v in request.GET.items() if k == "currency"],
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
        **money_by_status(period.start, period.end),
    }
    if last_received_at is None:
        context.update(_setup_help())
    return render(request, "dashboard/overview.html", context)


def _with(request, **changes) -> str:
    """This page's query with `changes`."""
    return "?" + urlencode({**request.GET.dict(), **changes})


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
