"""The brands list (a period's figures per brand, sortable, CSV) and a brand's timeline (its events,
filtered and keyset-paged, with a daily chart and a CSV of every matching event)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_GET

from events.common.times import days_back, local_day
from events.models import Action, ActionEvent, Brand, DelayAlert
from events.reporting import rollups

from .. import folding, money
from ..exports import csv_response, duration_cell, moment_cell
from ..filters import TimelineFilter
from ..paging import keyset_page
from ..timezones import display_zone
from .common import build_charts, csv_query, day_slots, period_of, wants_csv
from .reports import money_by_status

CHART_DEFAULT_DAYS = 30

# --- Brands list --------------------------------------------------------------------------

BRAND_CSV_HEADER = [
    "campaign_id", "name", "tracked", "modified", "reversed", "reversed_by_now_share", "currency", "net_payout",
    "last_postback", "delay_p95", "open_alerts",
]  # fmt: skip

BRAND_SORTS = {
    "name": lambda r: (r["brand"].name or r["brand"].campaign_id).lower(),
    "actions": lambda r: r["tracked"],
    "reversed_by_now": lambda r: r["reversed_share"] if r["reversed_share"] is not None else -1,
    "last_postback": lambda r: r["brand"].last_received_at.timestamp() if r["brand"].last_received_at else 0,
    "delay_p95": lambda r: r["delay_p95"] if r["delay_p95"] is not None else -1,
}

BRAND_COLUMNS = [
    ("name", "Brand"),
    ("actions", "Actions tracked"),
    ("payout", "Net payout"),
    ("reversed_by_now", "Reversed by now"),
    ("last_postback", "Last postback"),
    ("delay_p95", "Delay p95"),
]


@login_required
@require_GET
def brands(request):
    period, period_error = period_of(request)
    search = request.GET.get("q", "").strip()[:255]
    brand_list = list(Brand.objects.search(search).with_last_postback())
    # The setup page's test postbacks are no brand's: hidden unless asked for, and marked.
    show_tests = request.GET.get("tests") == "show"
    hidden_tests = [] if show_tests else [brand for brand in brand_list if brand.is_test]
    brand_list = [brand for brand in brand_list if show_tests or not brand.is_test]
    figures = rollups.brand_figures(period.start, period.end, display_zone())
    reversed_by_now = dict(
        Action.objects.reversed_by_now(period.start, period.end)
        .order_by()
        .values_list("brand_id")
        .annotate(n=Count("id"))
    )
    alerts = DelayAlert.objects.open_counts_by_brand()
    rows = _brand_rows(brand_list, figures.rows, figures.percentiles(0.95), alerts, reversed_by_now)

    sort = request.GET.get("sort", "-actions")
    key = sort.lstrip("-")
    if key not in BRAND_SORTS and key != "payout":
        sort, key = "-actions", "actions"
    if key == "payout":
        rows = _by_currency_then_net(rows, descending=sort.startswith("-"))
    else:
        rows.sort(key=BRAND_SORTS[key], reverse=sort.startswith("-"))

    if wants_csv(request):
        return csv_response("brands.csv", BRAND_CSV_HEADER, _brand_csv(rows))
    return render(
        request,
        "dashboard/brands.html",
        {
            "rows": rows,
            "columns": _columns(request, sort, key),
            "by_currency": key == "payout",
            "hidden_tests": hidden_tests,
            "show_tests_query": urlencode({**request.GET.dict(), "tests": "show"}),
            "search": search,
            "period": period,
            "period_error": period_error,
            "keep_query": urlencode({k: v for k, v in request.GET.items() if k in ("q", "sort", "tests")}),
            "keep_pairs": [(k, v) for k, v in request.GET.items() if k in ("q", "sort", "tests")],
            "csv_query": urlencode({**request.GET.dict(), "format": "csv"}),
        },
    )


def _columns(request, sort: str, key: str) -> list[dict]:
    """The sortable column headers: each links to its sort, descending first (the name ascending first)."""
    columns = []
    for name, label in BRAND_COLUMNS:
        active = key == name
        descending = active and sort.startswith("-")
        next_sort = name if descending else f"-{name}"
        if not active and name == "name":
            next_sort = "name"
        aria = ("descending" if descending else "ascending") if active else None
        query = {k: v for k, v in request.GET.items() if k != "format"}
        query["sort"] = next_sort
        columns.append({"label": label, "url": "?" + urlencode(query), "aria": aria, "name": name})
    return columns


def _brand_rows(brand_list, stat_rows, p95, alert_counts, reversed_by_now):
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
                # Of the actions it tracked in the period, the share reversed by now (a cohort: never over 100 %).
                "reversed_share": folding.share(reversed_by_now.get(brand.pk, 0), tracked),
                "nets": nets,
                "delay_p95": p95.get(brand.pk),
                "open_alerts": alert_counts.get(brand.pk, 0),
            }
        )
    return rows


def _by_currency_then_net(rows: list[dict], *, descending: bool) -> list[dict]:
    """Net payouts compare within one currency only (¥23,004 is not more than C$2,116.77): brands
    grouped by the currency of their busiest money (alphabetically), each group sorted by that net,
    brands without payout last."""
    main = {id(row): next(((c, net) for c, net in row["nets"] if c), None) for row in rows}
    with_money = [row for row in rows if main[id(row)]]
    ordered = sorted(with_money, key=lambda row: main[id(row)][1], reverse=descending)
    ordered.sort(key=lambda row: main[id(row)][0])  # stable: each currency keeps its order by net
    return ordered + [row for row in rows if not main[id(row)]]


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
                "" if row["reversed_share"] is None else f"{row['reversed_share']:.4f}",
                currency,
                money.plain_amount(net, currency),
                moment_cell(brand.last_received_at),
                duration_cell(row["delay_p95"]),
                row["open_alerts"],
            ]


# --- Brand timeline -----------------------------------------------------------------------

EVENT_CSV_HEADER = [
    "received_at", "changed_at", "brand", "action_id", "kind", "from_state", "to_state", "status", "currency",
    "amount", "delta_amount", "payout", "delta_payout", "delay", "duplicates", "out_of_order",
    "superseded", "anomaly", "order_id", "tracker_id", "sub_id1",
]  # fmt: skip


# What a timeline row shows (templatetags event_row): the JSON diff and the action's other fields stay in the database.
EVENT_ROW_FIELDS = [
    "received_at", "changed_at", "kind", "from_state", "to_state", "status", "currency", "amount", "delta_amount",
    "payout", "delta_payout", "delay_seconds", "duplicate_count", "out_of_order", "superseded", "anomaly", "source",
    "action__action_id", "action__oid", "action__locking_date", "action__state", "action__status",
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
            moment_cell(r[0]), moment_cell(r[1]), campaign_id, r[2], r[3], r[4], r[5], r[6], currency,
            *(money.plain_amount(v, currency) for v in r[8:12]), duration_cell(r[12]), r[13],
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

    zone = display_zone()
    start, end = filterset.day_range()
    end = end or timezone.now()
    # Whole days: the last CHART_DEFAULT_DAYS of them up to the end (today included) unless chosen.
    start = start or days_back(end - timedelta(microseconds=1), CHART_DEFAULT_DAYS, zone)
    currency = next((e.currency for e in page.rows if e.currency), None)
    buckets = filterset.chart_qs.in_period(start, end).by_bucket("day", display_zone(), currency)
    chart = build_charts(buckets, day_slots(start, end), "day", currency)
    return render(
        request,
        "dashboard/brand.html",
        {
            "brand": brand,
            "filter": filterset,
            "page": page,
            "chart": chart,
            "chart_days": (
                local_day(start, display_zone()),
                local_day(end - timedelta(microseconds=1), display_zone()),
            ),
            "filtered": any(v for k, v in request.GET.items() if k not in ("before", "after")),
            "csv_query": csv_query(request),
            **money_by_status(start, end, brand, label="Tracked in the chart's days"),
        },
    )


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[:60]
