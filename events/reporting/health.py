"""`/healthz`, for load balancers and monitoring: the database answers, and the delay watcher runs."""

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
    except DatabaseError:
        body["status"] = "database unavailable"
        return JsonResponse(body, status=503)
    stale_after = timedelta(seconds=3 * settings.WATCH_INTERVAL_SECONDS)
    body["watcher_ok"] = beat is not None and now - beat <= stale_after
    body["status"] = "ok" if body["watcher_ok"] else "watcher has not run for 3 intervals"
    return JsonResponse(body, status=200 if body["watcher_ok"] else 503)
