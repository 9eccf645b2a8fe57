"""`/healthz`, for load balancers and monitoring: the database answers, the delay watcher runs, and
stored postbacks are applied (none waits longer than PROCESSING_STALL_SECONDS)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from events.models import DelayAlert, Delivery, WatcherHeartbeat


@never_cache
@require_GET
def healthz(request):
    """For load balancers and monitoring: no login, no secrets."""
    now = timezone.now()
    body: dict = {"database": False}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        body["database"] = True
        last = Delivery.objects.order_by("-received_at").values_list("received_at", flat=True).first()
        beat = (
            WatcherHeartbeat.objects.filter(name=WatcherHeartbeat.DELAY_WATCHER)
            .values_list("last_run_at", flat=True)
            .first()
        )
        body["last_postback_received_at"] = last.isoformat() if last else None
        body["watcher_last_run_at"] = beat.isoformat() if beat else None
        body["open_alerts"] = DelayAlert.objects.active().count()
        pending, oldest = Delivery.objects.backlog()
        body["pending_deliveries"] = pending
        body["oldest_pending_age_seconds"] = round((now - oldest).total_seconds()) if oldest else None
    except DatabaseError:
        body["status"] = "database unavailable"
        return JsonResponse(body, status=503)
    stale_after = timedelta(seconds=3 * settings.WATCH_INTERVAL_SECONDS)
    body["watcher_ok"] = beat is not None and now - beat <= stale_after
    body["processing_ok"] = oldest is None or now - oldest <= timedelta(seconds=settings.PROCESSING_STALL_SECONDS)
    problems = []
    if not body["watcher_ok"]:
        problems.append("watcher has not run for 3 intervals")
    if not body["processing_ok"]:
        problems.append(f"postbacks wait to be applied for over {settings.PROCESSING_STALL_SECONDS} s")
    body["status"] = "; ".join(problems) or "ok"
    return JsonResponse(body, status=503 if problems else 200)
