"""Prometheus metrics at /metrics, computed from the database at scrape time.

Every gunicorn worker on every host answers with the same numbers (PostgreSQL is the one source
of truth), so no multiprocess registry or shared directory is needed. A scrape costs a handful
of aggregate queries; scrape every 30-60 s.

Protected by METRICS_TOKEN (`Authorization: Bearer <token>`) or METRICS_ALLOWED_CIDRS (client
addresses, X-Forwarded-For only from TRUSTED_PROXIES); with neither set it answers 403.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from django.conf import settings
from django.db.models import Count, Max, Q, Sum
from django.http import HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from events.common.networks import client_address, in_networks, parse_ip, parse_network
from events.models import (
    ActionEvent,
    AlertKind,
    DelayAlert,
    Delivery,
    ImpactAccount,
    Outcome,
    RefusalCounter,
    RefusalReason,
)

# Upper bounds of the histogram buckets.
PROCESSING_BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
DELAY_BUCKETS_SECONDS = (60, 300, 900, 1800, 3600, 7200, 21600, 86400, 604800)


def _histogram(name, documentation, queryset, field, bounds, scale=1.0) -> HistogramMetricFamily:
    """One aggregate query: cumulative counts per bucket, total and sum."""
    aggregates = {f"le{i}": Count("id", filter=Q(**{f"{field}__lte": b})) for i, b in enumerate(bounds)}
    row = queryset.filter(**{f"{field}__isnull": False}).aggregate(total=Count("id"), sum=Sum(field), **aggregates)
    buckets = [(_float(b * scale), row[f"le{i}"]) for i, b in enumerate(bounds)]
    buckets.append(("+Inf", row["total"]))
    return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=(row["sum"] or 0) * scale)


def _float(value: float) -> str:
    return repr(float(value))


class DatabaseCollector:
    def collect(self) -> Iterable[Metric]:
        yield from self._postbacks()
        yield from self._backlog()
        yield _histogram(
            "postbacks_processing_seconds",
            "Time to parse and apply a stored postback: its share of its batch (last attempt of each delivery).",
            Delivery.objects.all(),
            "processing_ms",
            PROCESSING_BUCKETS_MS,
            scale=0.001,
        )
        yield _histogram(
            "postbacks_delay_seconds",
            "Delay between a change at impact.com and its postback arriving (events with a known change time).",
            ActionEvent.objects.all(),
            "delay_seconds",
            DELAY_BUCKETS_SECONDS,
        )
        yield self._open_alerts()
        yield self._reconcile_budget()

    @staticmethod
    def _postbacks() -> Iterable[Metric]:
        received = CounterMetricFamily(
            "postbacks_received", "Postbacks stored (passed authentication), by outcome.", labels=["outcome"]
        )
        counts = dict(Delivery.objects.order_by().values_list("outcome").annotate(n=Count("id")))
        for outcome in Outcome.values:
            received.add_metric([outcome], counts.get(outcome, 0))
        yield received
        refused = CounterMetricFamily("postbacks_refused", "Postbacks refused, by reason.", labels=["reason"])
        refusals = dict(RefusalCounter.objects.values_list("reason", "count"))
        for reason in RefusalReason.values:
            if reason != RefusalReason.THROTTLE_FAILED:
                refused.add_metric([reason], refusals.get(reason, 0))
        yield refused
        throttle_failed = CounterMetricFamily(
            "postbacks_refusal_throttle_errors",
            "Refusals answered without the refusal throttle because its store failed (each is logged).",
        )
        throttle_failed.add_metric([], refusals.get(RefusalReason.THROTTLE_FAILED, 0))
        yield throttle_failed
        last = Delivery.objects.aggregate(last=Max("received_at"))["last"]
        last_received = GaugeMetricFamily(
            "postbacks_last_received_timestamp_seconds", "When the last postback was stored (Unix time; 0: never)."
        )
        last_received.add_metric([], last.timestamp() if last else 0)
        yield last_received

    @staticmethod
    def _backlog() -> Iterable[Metric]:
        pending, oldest = Delivery.objects.backlog()
        yield GaugeMetricFamily("postbacks_pending", "Postbacks stored and not applied yet.", value=pending)
        age = (timezone.now() - oldest).total_seconds() if oldest else 0
        yield GaugeMetricFamily(
            "postbacks_oldest_pending_age_seconds",
            "How long the oldest postback not applied yet has waited.",
            value=age,
        )

    @staticmethod
    def _open_alerts() -> Metric:
        open_alerts = GaugeMetricFamily(
            "postbacks_open_alerts", "Delay alerts not resolved yet (open or acknowledged), by kind.", labels=["kind"]
        )
        active = dict(DelayAlert.objects.active().order_by().values_list("kind").annotate(n=Count("id")))
        for kind in AlertKind.values:
            open_alerts.add_metric([kind], active.get(kind, 0))
        return open_alerts

    @staticmethod
    def _reconcile_budget() -> Metric:
        budget = GaugeMetricFamily(
            "postbacks_reconcile_budget_remaining",
            "impact.com API requests reconciliation may still make this clock hour, per account.",
            labels=["account"],
        )
        hour = timezone.now().replace(minute=0, second=0, microsecond=0)
        limit = settings.IMPACT_API_REQUESTS_PER_HOUR
        for sid, budget_hour, used in ImpactAccount.objects.filter(active=True).values_list(
            "account_sid", "budget_hour", "budget_used"
        ):
            budget.add_metric([sid], max(0, limit - (used if budget_hour == hour else 0)))
        return budget


def render() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector())
    return generate_latest(registry)


def access_allowed(request) -> tuple[bool, int, str]:
    """(allowed, status when refused, reason)."""
    token, cidrs = settings.METRICS_TOKEN, settings.METRICS_ALLOWED_CIDRS
    if not token and not cidrs:
        return False, 403, "Metrics are off: set METRICS_TOKEN or METRICS_ALLOWED_CIDRS."
    if token:
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode()):
            return True, 200, ""
    if cidrs:
        networks = [parse_network(c) for c in cidrs]
        if in_networks(parse_ip(client_address(request)), networks):
            return True, 200, ""
    if token:
        return False, 401, "Send Authorization: Bearer <METRICS_TOKEN>."
    return False, 403, "This address is not in METRICS_ALLOWED_CIDRS."


@require_GET
@never_cache
def metrics_view(request):
    allowed, status, reason = access_allowed(request)
    if not allowed:
        response = HttpResponse(reason + "\n", status=status, content_type="text/plain")
        if status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(render(), content_type=CONTENT_TYPE_LATEST)
