"""Delay alerts pages: the list, an alert with its evidence and that evidence as CSV, and
acknowledging or resolving one (staff)."""

from __future__ import annotations

import csv

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Case, IntegerField, Value, When
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from events import alerts
from events.models import (
    AlertKind,
    AlertStatus,
    Brand,
    DelayAlert,
    ImpactAccount,
    Notification,
    WatcherHeartbeat,
)

from ..access import ACKNOWLEDGE, can, permission_required
from ..exports import duration_cell, moment_cell
from ..filters import parse_id

PAGE_SIZE = 100
NOTE_MAX = 2000


def _status_order():
    return Case(
        When(status=AlertStatus.OPEN, then=Value(0)),
        When(status=AlertStatus.ACKNOWLEDGED, then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    )


@login_required
@require_GET
def alert_list(request):
    shown = DelayAlert.objects.select_related("brand")
    status = request.GET.get("status", "")
    kind = request.GET.get("kind", "")
    brand = request.GET.get("brand", "")
    expected = request.GET.get("expected", "")
    if status == "active":
        shown = shown.active()
    elif status in AlertStatus.values:
        shown = shown.filter(status=status)
    if kind in AlertKind.values:
        shown = shown.filter(kind=kind)
    if brand:  # not an id: no brand has it, so no alert either
        brand_id = parse_id(brand)
        shown = shown.filter(brand_id=brand_id) if brand_id is not None else shown.none()
    if expected in ("yes", "no"):
        shown = shown.filter(expected=expected == "yes")
    shown = shown.annotate(status_order=_status_order()).order_by("status_order", "-opened_at", "-id")
    context = {
        "alerts": shown[:PAGE_SIZE],
        "filters": {"status": status, "kind": kind, "brand": brand, "expected": expected},
        "statuses": AlertStatus.choices,
        "kinds": AlertKind.choices,
        "brands": Brand.objects.filter(delay_alerts__isnull=False).distinct().order_by("name", "campaign_id"),
        "heartbeat": WatcherHeartbeat.objects.filter(name=WatcherHeartbeat.DELAY_WATCHER).first(),
        "accounts": ImpactAccount.objects.filter(active=True),
        "failing": Notification.objects.filter(sent_at=None).exclude(last_error="").select_related("alert")[:20],
        "channels": {"emails": settings.ALERT_EMAILS, "webhook": bool(settings.ALERT_WEBHOOK_URL)},
    }
    return render(request, "dashboard/alerts/list.html", context)


def _alert(pk: int) -> DelayAlert:
    return get_object_or_404(DelayAlert.objects.select_related("brand"), pk=pk)


@login_required
@require_GET
def alert_detail(request, pk: int):
    alert = _alert(pk)
    context = {
        "alert": alert,
        "items": alert.items.all()[:1000],
        "changes": alert.changes.select_related("user"),
        "notifications": alert.notifications.all(),
        "can_acknowledge": can(request.user, ACKNOWLEDGE),
    }
    return render(request, "dashboard/alerts/detail.html", context)


@login_required
@require_GET
def alert_csv(request, pk: int):
    """The evidence impact.com support asks for, one row per change."""
    alert = _alert(pk)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="alert-{alert.pk}-evidence.csv"'
    writer = csv.writer(response)
    writer.writerow(
        ["alert", "kind", "brand", "campaign_id", "action_id", "change", "status", "changed_at_utc",
         "postback_received_at_utc", "delay", "backfilled_from_api_at_utc"]
    )  # fmt: skip
    for item in alert.items.all().iterator(chunk_size=2000):
        writer.writerow(
            [
                alert.pk,
                alert.kind,
                _safe(alert.brand.name if alert.brand else ""),
                _safe(alert.brand.campaign_id if alert.brand else ""),
                _safe(item.action_id),
                item.change,
                _safe(item.status),
                moment_cell(item.changed_at),
                moment_cell(item.received_at) if item.received_at else "no postback",
                duration_cell(item.delay_seconds),
                moment_cell(item.backfilled_at),
            ]
        )
    return response


def _safe(text: str) -> str:
    """No spreadsheet formulas from outside input."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def _note(request) -> str:
    return request.POST.get("note", "").strip()[:NOTE_MAX]


@permission_required(*ACKNOWLEDGE)
@require_POST
def alert_acknowledge(request, pk: int):
    return _change_status(
        request,
        pk,
        alerts.acknowledge,
        done="Alert acknowledged: no more reminders.",
        refused="This alert is {status}: it cannot be acknowledged.",
    )


@permission_required(*ACKNOWLEDGE)
@require_POST
def alert_resolve(request, pk: int):
    return _change_status(
        request, pk, alerts.resolve, done="Alert resolved.", refused="This alert is already resolved."
    )


def _change_status(request, pk: int, change, *, done: str, refused: str):
    """Apply `change` (events.alerts.acknowledge or resolve) with the staff member's note, say whether
    it took (`refused` may name the alert's {status}), and go back to the alert."""
    alert = _alert(pk)
    if change(alert, user=request.user, note=_note(request)):
        messages.success(request, done)
    else:
        messages.error(request, refused.format(status=alert.get_status_display().lower()))
    return redirect("alert-detail", pk=alert.pk)
