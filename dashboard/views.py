"""Dashboard pages. Thin: queries live on events' querysets, maths in small pure modules.

Every page runs a fixed number of queries whatever the data size (tests assert it).
"""

from __future__ import annotations

import contextlib
import json
from datetime import datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qsl, urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from events import impact
from events.intake.credentials import TOKEN_PARAMETER
from events.intake.redaction import REDACTED
from events.models import (
    MONEY_FIELDS,
    Action,
    ActionEvent,
    Brand,
    Credential,
    DelayAlert,
    Delivery,
    RefusalCounter,
    RefusedAttempt,
)
from events.processing import replay as replay_deliveries
from events.reporting import rollups

from . import charts, folding, money
from .access import staff_required
from .alerts import active_alert_counts
from .exports import csv_response
from .filters import DeliveryFilter, RefusedFilter, TimelineFilter
from .paging import keyset_page
from .periods import BadPeriod, Period, parse_period
from .templatetags.dashboard import when_text
from .timezones import display_zone

CHART_DEFAULT_DAYS = 30
REPLAY_MAX = 200
MONEY_PARTS = ("gained", "changed", "lost")
DATE_FIELDS = {"event_date", "creation_date", "locking_date", "referring_date", "cleared_date"}


def wants_csv(request) -> bool:
    return request.GET.get("format") == "csv"


def _period(request):
    now = timezone.now()
    try:
        period = parse_period(
            request.GET.get("period"), request.GET.get("start"), request.GET.get("end"), now=now, tz=display_zone()
        )
        return period, None
    except BadPeriod as exc:
        return parse_period(None, None, None, now=now, tz=display_zone()), str(exc)


def _open_alerts(request) -> int:
    """Delay alerts not resolved yet (open or acknowledged); the banner reuses the same query."""
    counts = active_alert_counts(request)
    return counts["unexpected"] + counts["expected"]


def _bucket_label(moment, bucket: str) -> str:
    local = timezone.localtime(moment, display_zone())
    return local.strftime("%H:%M") if bucket == "hour" else local.strftime("%b %d")


def _bucket_key(moment):
    return timezone.localtime(moment, display_zone()).replace(tzinfo=None)


def build_charts(rows: list[dict], slots: list, bucket: str, currency: str | None):
    """Stacked events chart and net payout chart over every slot, empty slots included."""
    by_key = {_bucket_key(row["bucket"]): row for row in rows}
    labels, counts, nets, table = [], [], [], []
    for slot in slots:
        row = by_key.get(_bucket_key(slot), {})
        net = sum((Decimal(row.get(name) or 0) for name in MONEY_PARTS), Decimal(0))
        label = _bucket_label(slot, bucket)
        labels.append(label)
        counts.append(row)
        nets.append(net)
        table.append(
            {
                "label": label,
                "tracked": row.get("tracked", 0),
                "modified": row.get("modified", 0),
                "reversed": row.get("reversed", 0),
                "net": net,
            }
        )
    series = [("tracked", "tracked"), ("modified", "modified"), ("reversed", "reversed")]
    return {
        "events": charts.stacked_bars(labels, series, counts),
        "payout": charts.signed_bars(labels, nets, fmt=lambda v: money.format_money(v, currency or "", signed=True)),
        "table": table,
        "currency": currency or "",
        "bucket": bucket,
    }


def _day_slots(start, end) -> list:
    return Period("custom", start, end, "").buckets(display_zone(), "day")


# --- Overview ---------------------------------------------------------------------------


@login_required
@require_GET
def overview(request):
    period, period_error = _period(request)
    figures = rollups.figures(period.start, period.end, period.bucket, display_zone())
    rows = figures.rows
    summary = {**folding.summary(rows), **figures.delay_summary()}
    main_currency = folding.main_currency(rows)
    buckets = folding.per_bucket(rows, main_currency)
    deliveries = figures.deliveries
    last_received_at = Delivery.objects.last_received_at()
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
        "open_alerts": _open_alerts(request),
        "late_minutes": settings.DELAY_LATE_AFTER_MINUTES,
        "alert_minutes": settings.DELAY_ALERT_AFTER_MINUTES,
    }
    if last_received_at is None:
        context.update(_setup_help())
    return render(request, "dashboard/overview.html", context)


def _setup_help() -> dict:
    endpoint = settings.PUBLIC_URL + reverse("impact-postback")
    return {
        "empty": True,
        "url_template": impact.url_template(endpoint),
        "json_template": impact.json_body_template(),
        "endpoint": endpoint,
        "credentials": Credential.objects.usable().count(),
    }


# --- Brands -----------------------------------------------------------------------------

BRAND_CSV_HEADER = [
    "campaign_id", "name", "tracked", "modified", "reversed", "reversal_rate", "currency", "net_payout",
    "last_postback", "delay_p95_seconds", "open_alerts",
]  # fmt: skip

BRAND_SORTS = {
    "name": lambda r: (r["brand"].name or r["brand"].campaign_id).lower(),
    "actions": lambda r: r["tracked"],
    "payout": lambda r: r["net_sort"],
    "reversal_rate": lambda r: r["reversal_rate"] if r["reversal_rate"] is not None else -1,
    "last_postback": lambda r: r["brand"].last_received_at.timestamp() if r["brand"].last_received_at else 0,
    "delay_p95": lambda r: r["delay_p95"] if r["delay_p95"] is not None else -1,
}


@login_required
@require_GET
def brands(request):
    period, period_error = _period(request)
    search = request.GET.get("q", "").strip()[:255]
    brand_list = list(Brand.objects.search(search).with_last_postback())
    figures = rollups.brand_figures(period.start, period.end, display_zone())
    rows = _brand_rows(brand_list, figures.rows, figures.percentiles(0.95), DelayAlert.objects.open_counts_by_brand())

    sort = request.GET.get("sort", "-actions")
    key = sort.lstrip("-")
    if key not in BRAND_SORTS:
        sort, key = "-actions", "actions"
    rows.sort(key=BRAND_SORTS[key], reverse=sort.startswith("-"))

    if wants_csv(request):
        return csv_response(
            "brands.csv",
            BRAND_CSV_HEADER,
            _brand_csv(rows),
        )
    headers = [
        ("name", "Brand"),
        ("actions", "Actions tracked"),
        ("payout", "Net payout"),
        ("reversal_rate", "Reversal rate"),
        ("last_postback", "Last postback"),
        ("delay_p95", "Delay p95"),
    ]
    columns = []
    for name, label in headers:
        active = key == name
        descending = active and sort.startswith("-")
        next_sort = name if descending else f"-{name}"
        if not active and name == "name":
            next_sort = "name"
        aria = ("descending" if descending else "ascending") if active else None
        query = {k: v for k, v in request.GET.items() if k != "format"}
        query["sort"] = next_sort
        columns.append({"label": label, "url": "?" + urlencode(query), "aria": aria, "name": name})
    return render(
        request,
        "dashboard/brands.html",
        {
            "rows": rows,
            "columns": columns,
            "search": search,
            "period": period,
            "period_error": period_error,
            "keep_query": urlencode({k: v for k, v in request.GET.items() if k in ("q", "sort")}),
            "keep_pairs": [(k, v) for k, v in request.GET.items() if k in ("q", "sort")],
            "csv_query": urlencode({**request.GET.dict(), "format": "csv"}),
        },
    )


def _brand_rows(brand_list, stat_rows, p95, alert_counts):
    by_brand = folding.per_key(stat_rows, "brand_id")
    rows = []
    for brand in brand_list:
        mine = by_brand.get(brand.pk, [])
        stat = folding.summary(mine)
        nets = [(m["currency"], m["net"]) for m in folding.money_by_currency(mine)]
        tracked = stat["tracked"]
        rows.append(
            {
                "brand": brand,
                "tracked": tracked,
                "modified": stat["modified"],
                "reversed": stat["reversed"],
                "events": stat["events"],
                "reversal_rate": stat["reversed"] / tracked if tracked else None,
                "nets": nets,
                "net_sort": float(sum((n for _, n in nets), Decimal(0))),
                "delay_p95": p95.get(brand.pk),
                "open_alerts": alert_counts.get(brand.pk, 0),
            }
        )
    return rows


def _brand_csv(rows):
    for row in rows:
        brand = row["brand"]
        nets = row["nets"] or [("", Decimal(0))]
        for currency, net in nets:
            yield [
                brand.campaign_id,
                brand.name,
                row["tracked"],
                row["modified"],
                row["reversed"],
                "" if row["reversal_rate"] is None else f"{row['reversal_rate']:.4f}",
                currency,
                money.plain_amount(net, currency),
                brand.last_received_at.isoformat() if brand.last_received_at else "",
                "" if row["delay_p95"] is None else round(row["delay_p95"]),
                row["open_alerts"],
            ]


# --- Brand timeline -----------------------------------------------------------------------

EVENT_CSV_HEADER = [
    "received_at", "changed_at", "brand", "action_id", "kind", "from_state", "to_state", "status", "currency",
    "amount", "delta_amount", "payout", "delta_payout", "delay_seconds", "duplicates", "out_of_order",
    "superseded", "anomaly", "order_id", "tracker_id", "sub_id1",
]  # fmt: skip


# What a timeline row shows (templatetags event_row): the JSON diff and the action's other fields stay in the database.
EVENT_ROW_FIELDS = [
    "received_at", "changed_at", "kind", "from_state", "to_state", "currency", "amount", "delta_amount", "payout",
    "delta_payout", "delay_seconds", "duplicate_count", "out_of_order", "superseded", "anomaly", "source",
    "action__action_id", "action__oid",
]  # fmt: skip


def _event_csv(queryset, campaign_id: str):
    rows = queryset.values_list(
        "received_at", "changed_at", "action__action_id", "kind", "from_state", "to_state", "status", "currency",
        "amount", "delta_amount", "payout", "delta_payout", "delay_seconds", "duplicate_count", "out_of_order",
        "superseded", "anomaly", "action__oid", "action__action_tracker_id", "action__sub_id1",
    )  # fmt: skip
    for r in rows.iterator(chunk_size=2000):
        currency = r[7]
        yield [
            r[0].isoformat(), r[1].isoformat() if r[1] else "", campaign_id, r[2], r[3], r[4], r[5], r[6], currency,
            *(money.plain_amount(v, currency) for v in r[8:12]), r[12] if r[12] is not None else "", r[13],
            int(r[14]), int(r[15]), r[16], r[17], r[18], r[19],
        ]  # fmt: skip


@login_required
@require_GET
def brand_timeline(request, campaign_id):
    brand = get_object_or_404(Brand, campaign_id=campaign_id)
    filterset = TimelineFilter(
        request.GET or None, queryset=ActionEvent.objects.for_brand(brand), brand=brand, tz=display_zone()
    )
    events = filterset.qs
    if wants_csv(request):
        return csv_response(f"brand-{_slug(campaign_id)}-events.csv", EVENT_CSV_HEADER, _event_csv(events, campaign_id))
    page = keyset_page(request, events.select_related("action").only(*EVENT_ROW_FIELDS))
    alert_by_event = DelayAlert.objects.active_by_event([e.pk for e in page.rows])
    for event in page.rows:
        event.active_alert_id = alert_by_event.get(event.pk)

    start, end = filterset.day_range()
    end = end or timezone.now()
    start = start or end - timedelta(days=CHART_DEFAULT_DAYS)
    currency = next((e.currency for e in page.rows if e.currency), None)
    buckets = filterset.chart_qs.in_period(start, end).by_bucket("day", display_zone(), currency)
    chart = build_charts(buckets, _day_slots(start, end), "day", currency)
    return render(
        request,
        "dashboard/brand.html",
        {
            "brand": brand,
            "filter": filterset,
            "page": page,
            "chart": chart,
            "chart_start": start,
            "chart_end": end,
            "filtered": any(v for k, v in request.GET.items() if k not in ("before", "after")),
            "csv_query": _csv_query(request),
        },
    )


def _csv_query(request) -> str:
    query = [(k, v) for k, v in request.GET.items() if k not in ("before", "after", "format")]
    return urlencode([*query, ("format", "csv")])


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[:60]


# --- Action detail -------------------------------------------------------------------------


@login_required
@require_GET
def action_detail(request, action_id):
    action = get_object_or_404(Action.objects.select_related("brand"), action_id=action_id)
    events = list(action.events.order_by("seq"))
    deliveries = list(Delivery.objects.for_action(action, [e.pk for e in events]).order_by("received_at", "id"))
    by_event: dict[int, list] = {}
    unattached = []
    for delivery in deliveries:
        delivery.pretty = pretty_payload(delivery)
        if delivery.event_id:
            by_event.setdefault(delivery.event_id, []).append(delivery)
        else:
            unattached.append(delivery)
    timeline = []
    for event in events:
        attached = by_event.get(event.pk, [])
        timeline.append(
            {
                "event": event,
                "diff": diff_rows(event.changes, event.currency or action.currency),
                "deliveries": attached,
                "duplicates": [d for d in attached if d.pk != event.delivery_id],
            }
        )
    timeline.reverse()  # newest first, like every other list
    return render(
        request,
        "dashboard/action.html",
        {"action": action, "timeline": timeline, "unattached": unattached, "is_staff": request.user.is_staff},
    )


def _label(name: str) -> str:
    try:
        return str(Action._meta.get_field(name).verbose_name).capitalize()
    except LookupError:
        return name.replace("_", " ").capitalize()


def diff_rows(changes: dict, currency: str) -> list[dict]:
    rows = []
    for name, pair in (changes or {}).items():
        old, new = [*pair, None, None][:2] if isinstance(pair, list) else (None, pair)
        rows.append({"field": _label(name), "old": _show(name, old, currency), "new": _show(name, new, currency)})
    return rows


def _show(name: str, value, currency: str) -> str:
    if value in (None, ""):
        return "—"
    if name in MONEY_FIELDS:
        try:
            return money.format_money(Decimal(str(value)), currency)
        except ArithmeticError:
            return str(value)
    if name in DATE_FIELDS:
        try:
            return when_text(datetime.fromisoformat(str(value))) + " " + display_zone().key
        except ValueError:
            return str(value)
    return str(value)


def pretty_payload(delivery) -> dict:
    """Query parameters as pairs, a JSON body indented; credentials were redacted when stored."""
    pairs = [
        (name, REDACTED if name == TOKEN_PARAMETER else value)
        for name, value in parse_qsl(delivery.query_string, keep_blank_values=True)
    ]
    body = delivery.body_text
    if body.strip():
        with contextlib.suppress(ValueError, RecursionError):
            body = json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    headers = sorted((delivery.headers or {}).items()) if isinstance(delivery.headers, dict) else []
    return {"pairs": pairs, "body": body, "headers": headers}


# --- Deliveries ----------------------------------------------------------------------------

DELIVERY_CSV_HEADER = ["id", "received_at", "method", "outcome", "action_id", "reason", "remote_addr", "query_string"]


@login_required
@require_GET
def deliveries(request):
    filterset = DeliveryFilter(request.GET or None, queryset=Delivery.objects.all(), tz=display_zone())
    rows = filterset.qs
    if wants_csv(request):
        data = rows.order_by("-received_at", "-id").values_list(
            "id", "received_at", "method", "outcome", "action_id", "reason", "remote_addr", "query_string"
        )
        return csv_response(
            "deliveries.csv",
            DELIVERY_CSV_HEADER,
            ([r[0], r[1].isoformat(), *r[2:]] for r in data.iterator(chunk_size=2000)),
        )
    page = keyset_page(request, rows.defer("body", "traceback", "headers"))
    return render(
        request,
        "dashboard/deliveries.html",
        {
            "filter": filterset,
            "page": page,
            "replayable": {"invalid", "failed", "received"},
            "csv_query": _csv_query(request),
            "replayed_ids": request.GET.get("ids", ""),
        },
    )


@staff_required
@require_POST
def replay(request):
    try:
        ids = sorted({int(value) for value in request.POST.getlist("delivery")})
    except ValueError:
        return HttpResponseBadRequest("Delivery ids must be numbers.")
    if not ids:
        messages.warning(request, "Select at least one invalid or failed delivery to replay.")
        return redirect("deliveries")
    if len(ids) > REPLAY_MAX:
        messages.error(request, f"Replay at most {REPLAY_MAX} deliveries at a time.")
        return redirect("deliveries")
    selected = Delivery.objects.replayable().filter(pk__in=ids).order_by("id")
    counts = replay_deliveries(selected)
    total = sum(counts.values())
    summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
    skipped = len(ids) - total
    text = f"Replayed {total} {'delivery' if total == 1 else 'deliveries'}"
    text += f": {summary}." if summary else "."
    if skipped:
        text += f" {skipped} skipped (already applied or duplicate)."
    level = messages.SUCCESS if set(counts) <= {"applied", "duplicate"} and total else messages.WARNING
    messages.add_message(request, level, text)
    return redirect(reverse("deliveries") + "?" + urlencode({"ids": ",".join(map(str, ids))}))


@login_required
@require_GET
def refused(request):
    filterset = RefusedFilter(request.GET or None, queryset=RefusedAttempt.objects.all(), tz=display_zone())
    rows = filterset.qs
    if wants_csv(request):
        data = rows.order_by("-at", "-id").values_list("at", "reason", "remote_addr", "method", "path", "size")
        return csv_response(
            "refused-attempts.csv",
            ["at", "reason", "remote_addr", "method", "path", "size"],
            ([r[0].isoformat(), *r[1:]] for r in data.iterator(chunk_size=2000)),
        )

    page = keyset_page(request, rows, field="at")
    return render(
        request,
        "dashboard/refused.html",
        {
            "filter": filterset,
            "page": page,
            "counters": list(RefusalCounter.objects.order_by("-count")),
            "keep": settings.REFUSED_ATTEMPTS_KEEP,
            "csv_query": _csv_query(request),
        },
    )
