"""The reports publishers run the business on: the locking calendar (`/locking/`), performance by
dimension (`/performance/`) and the search across brands (`/search/`); each with a CSV like the
other lists. The money by status shown on the overview and a brand's page is built here too."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from events.models import ActionReport, Brand
from events.reporting import report_queries as queries

from .. import money
from ..exports import csv_response, moment_cell
from ..paging import keyset_page
from ..report_filters import LockingFilter, PerformanceFilter
from ..timezones import display_zone
from .common import period_of, wants_csv

SEARCH_MAX = 255

# --- Money by status (the overview's and a brand's section) -------------------------------------


def money_by_status(start, end, brand: Brand | None = None, label: str = "Tracked in the period") -> dict:
    """The context of templates/dashboard/reports/status_money.html: every action as it stands now,
    then the actions tracked in [start, end) by the bucket they are in now."""
    now = timezone.now()
    return {
        "status_rows": [
            ("All, now", queries.status_now(now, brand)),
            (label, queries.status_for_period(start, end, now, brand)),
        ]
    }


# --- Locking calendar ---------------------------------------------------------------------------

CALENDAR_CSV_HEADER = ["day", "currency", "campaign_id", "brand", "actions", "payout", "still_pending_when_locked"]
LOCKING_CSV_HEADER = ["locking_date", "action_id", "campaign_id", "status_group", "currency", "payout", "flag"]


@login_required
@require_GET
def locking(request):
    filterset = LockingFilter(request.GET or None, queryset=ActionReport.objects.none())
    brand, currency, day = filterset.chosen_brand(), filterset.chosen("currency"), filterset.chosen("day")
    now = timezone.now()
    context = {"filter": filterset, "brand": brand, "currency": currency, "now": now, "csv_query": _csv(request)}
    if day is not None:
        rows = queries.locking_on(day, display_zone(), brand, currency)
        if wants_csv(request):
            return csv_response(f"locking-{day:%Y-%m-%d}.csv", LOCKING_CSV_HEADER, _locking_csv(rows, now))
        page = keyset_page(request, rows, field="locking_date")
        for row in page.rows:
            row.overdue = row.group in queries.NOT_APPROVED and row.locking_date <= now
        context.update(day=day, page=page, back_query=_without(request, "day", "before", "after"))
        return render(request, "dashboard/reports/locking_day.html", context)
    days = queries.calendar(now, brand, currency)
    names = Brand.objects.in_bulk({b for d in days for m in d.money.values() for b, _, _ in m["brands"]})
    if wants_csv(request):
        return csv_response("locking-calendar.csv", CALENDAR_CSV_HEADER, _calendar_csv(days, names))
    kept = _kept(request)
    shown = [d for d in days if d.money or d.today]
    for d in shown:
        # Formatted here, not in the template: ninety days of brands through the template engine
        # cost more than the page's queries.
        d.query = urlencode({**kept, "day": d.day.isoformat()})
        d.cells = [(currency, money.format_money(m["payout"], currency), _brands_text(m, names, currency))
                   for currency, m in d.money.items()]  # fmt: skip
    upcoming = [d for d in days if not d.past]
    context.update(days=shown, upcoming_total=_totals(upcoming), overdue=sum(d.overdue for d in days))
    return render(request, "dashboard/reports/locking.html", context)


def _brands_text(entry: dict, names: dict, currency: str, shown: int = 5) -> str:
    """`Brand 01: $1,234.00 (12) · Brand 07: $990.00 (9) · and 3 more`, the largest payout first."""
    ranked = sorted(entry["brands"], key=lambda brand: -brand[2])
    parts = [f"{names[b]}: {money.format_money(p, currency)} ({n})" for b, n, p in ranked[:shown]]
    if len(ranked) > shown:
        parts.append(f"and {len(ranked) - shown} more")
    return " · ".join(parts)


def _totals(days) -> list[tuple[str, int, object]]:
    """(currency, actions, payout) locking on these days, per currency."""
    totals: dict[str, list] = {}
    for d in days:
        for currency, entry in d.money.items():
            slot = totals.setdefault(currency, [0, 0])
            slot[0] += entry["actions"]
            slot[1] += entry["payout"]
    return [(c, n, p) for c, (n, p) in sorted(totals.items())]


def _calendar_csv(days, names):
    for d in days:
        for currency, entry in sorted(d.money.items()):
            for brand_id, n, payout in entry["brands"]:
                brand = names[brand_id]
                yield [d.day.isoformat(), currency, brand.campaign_id, brand.name, n,
                       money.plain_amount(payout, currency), entry["overdue"] if d.past else ""]  # fmt: skip


def _locking_csv(rows, now):
    for r in rows.order_by("locking_date", "id").iterator(chunk_size=2000):
        overdue = r.group in queries.NOT_APPROVED and r.locking_date <= now
        yield [moment_cell(r.locking_date), r.action.action_id, r.brand.campaign_id, r.group, r.currency,
               money.plain_amount(r.payout, r.currency), "still pending when locked" if overdue else ""]  # fmt: skip


# --- Performance by dimension -------------------------------------------------------------------

PERFORMANCE_CSV_HEADER = [
    "dimension", "value", "currency", "tracked", "reversed_by_now", "reversed_share", "gained", "changed", "lost",
    "net",
]  # fmt: skip
PERFORMANCE_CSV_LIMIT = 10_000
PERFORMANCE_COLUMNS = [
    ("value", "Value"), ("tracked", "Actions tracked"), ("reversed", "Reversed by now"),
    ("reversed_rate", "Reversed share"), ("gained", "Gained"), ("lost", "Lost"), ("net", "Net"),
]  # fmt: skip
DRILL_CSV_HEADER = ["tracked_at", "action_id", "campaign_id", "status_group", "currency", "gained", "lost", "net"]


@login_required
@require_GET
def performance(request):
    period, period_error = period_of(request)
    filterset = PerformanceFilter(request.GET or None, queryset=ActionReport.objects.none())
    by, brand, currency = filterset.dimension(), filterset.chosen_brand(), filterset.chosen("currency")
    sort = filterset.cleaned().get("sort") or "-tracked"
    reports = queries.tracked_in(period.start, period.end, brand)
    if currency:
        reports = reports.filter(currency=currency)
    context = {
        "filter": filterset, "period": period, "period_error": period_error, "by": by,
        "by_label": queries.DIMENSIONS[by][0], "brand": brand, "csv_query": _csv(request),
        "keep_query": urlencode(_kept(request, "period", "start", "end", "before", "after", "value", "sort")),
        "keep_pairs": list(_kept(request, "period", "start", "end", "before", "after", "value", "sort").items()),
    }  # fmt: skip
    if "value" in filterset.cleaned() and "value" in request.GET:
        return _drill(request, context, queries.with_value(reports, by, filterset.cleaned()["value"]))
    if wants_csv(request):
        rows = queries.performance(reports, by, sort, limit=PERFORMANCE_CSV_LIMIT)[:PERFORMANCE_CSV_LIMIT]
        return csv_response(f"performance-{by}.csv", PERFORMANCE_CSV_HEADER, _performance_csv(rows, by))
    rows = queries.performance(reports, by, sort)
    more = len(rows) > queries.PERFORMANCE_LIMIT
    groups: dict[str, list] = {}
    for row in rows[: queries.PERFORMANCE_LIMIT]:
        row["query"] = urlencode({**_kept(request, "before", "after", "format"), "value": row["value"]})
        groups.setdefault(row["currency"], []).append(row)
    context.update(groups=groups, more=more, limit=queries.PERFORMANCE_LIMIT, columns=_columns(request, sort))
    return render(request, "dashboard/reports/performance.html", context)


def _drill(request, context, rows):
    value = context["filter"].cleaned()["value"]
    if wants_csv(request):
        return csv_response("performance-actions.csv", DRILL_CSV_HEADER, _drill_csv(rows))
    page = keyset_page(request, rows, field="tracked_at")
    timeline = None
    brand, by, period = context["brand"], context["by"], context["period"]
    if brand is not None and by in ("sub_id1", "tracker"):
        # The brand timeline filters on these two: its events of the same actions.
        dates = {"date_from": period.first_day.isoformat(), "date_to": period.last_day.isoformat()}
        timeline = urlencode({"sub_id" if by == "sub_id1" else "tracker": value, **dates})
    context.update(page=page, value=value, timeline=timeline, back_query=_without(request, "value", "before", "after"))
    return render(request, "dashboard/reports/performance_actions.html", context)


def _columns(request, sort: str) -> list[dict]:
    """Sortable headers: each sorts within every currency, descending first (the value ascending first)."""
    key = sort.lstrip("-")
    columns = []
    for name, label in PERFORMANCE_COLUMNS:
        active = key == name
        descending = active and sort.startswith("-")
        next_sort = name if descending or (not active and name == "value") else f"-{name}"
        query = {**_kept(request, "before", "after", "format"), "sort": next_sort}
        aria = ("descending" if descending else "ascending") if active else None
        columns.append({"name": name, "label": label, "url": "?" + urlencode(query), "aria": aria})
    return columns


def _performance_csv(rows, by):
    for r in rows:
        c = r["currency"]
        rate = "" if r["reversed_rate"] is None else f"{r['reversed_rate']:.4f}"
        yield [by, r["value"], c, r["tracked"], r["reversed"], rate,
               *(money.plain_amount(r[name], c) for name in ("gained", "changed", "lost", "net"))]  # fmt: skip


def _drill_csv(rows):
    for r in rows.order_by("-tracked_at", "-id").iterator(chunk_size=2000):
        c = r.currency
        yield [moment_cell(r.tracked_at), r.action.action_id, r.brand.campaign_id, r.group, c,
               money.plain_amount(r.gained, c), money.plain_amount(r.lost, c),
               money.plain_amount(r.gained + r.changed + r.lost, c)]  # fmt: skip


# --- Search -------------------------------------------------------------------------------------


@login_required
@require_GET
def search(request):
    text = request.GET.get("q", "").strip()[:SEARCH_MAX]
    results = queries.search(text) if text else None
    found = results is not None and any(results.values())
    return render(
        request,
        "dashboard/reports/search.html",
        {"q": text, "results": results, "found": found, "limit": queries.SEARCH_LIMIT, "now": timezone.now()},
    )


# --- Queries ------------------------------------------------------------------------------------


def _kept(request, *dropped: str) -> dict:
    return {k: v for k, v in request.GET.items() if k not in ("format", *dropped)}


def _without(request, *dropped: str) -> str:
    return urlencode(_kept(request, *dropped))


def _csv(request) -> str:
    return urlencode({**_kept(request, "before", "after"), "format": "csv"})
