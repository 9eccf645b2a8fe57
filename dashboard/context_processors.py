"""What every page's template gets: the active delay alerts for the banner, counted once a request."""

from __future__ import annotations

from django.db.models import Count

from events.models import DelayAlert


def active_alert_counts(request) -> dict[str, int]:
    """Active alerts (open or acknowledged), unexpected and expected: one query per request, whoever asks."""
    counts = getattr(request, "_active_alert_counts", None)
    if counts is None:
        rows = dict(DelayAlert.objects.active().values_list("expected").annotate(n=Count("id")).order_by())
        counts = {"unexpected": rows.get(False, 0), "expected": rows.get(True, 0)}
        request._active_alert_counts = counts
    return counts


def banner(request):
    """Active alerts for the banner on every page (one query, logged-in users only)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"alert_banner": active_alert_counts(request)}
