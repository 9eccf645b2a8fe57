"""The reports publishers run the business on: the locking calendar (`/locking/`), performance by
dimension (`/performance/`) and the search across brands (`/search/`); each with a CSV like the
other lists. The money by status shown on the overview and a brand's page is built here too."""

from __future__ import annotations

from html import escape  # the standard library's: Django's is wrapped for lazy strings, slower per call
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET

from events.common.times import local_day
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
    now_cards, period_cards = queries.money_by_status(timezone.now(), start, end, brand)
    return {"status_rows": [("All, now", now_cards), (label, period_cards)]}


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
        brands = queries.locking_brands(day, day, brand, currency)
        names = Brand.objects.in_bulk({b["brand_id"] for b in brands})
        for b in brands:
            b["brand"] = names[b["brand_id"]]
            b["flagged"] = b["pending"] if day < local_day(now, display_zone()) else 0
        context.update(day=day, page=page, brands=brands, back_query=_without(request, "day", "before", "after"))
        return render(request, "dashboard/reports/locking_day.html", context)
    days = queries.calendar(now, brand, currency)
    if wants_csv(request):
        first, last = queries.calendar_window(now)
        brands = queries.locking_brands(first, last, brand, currency)
        names = Brand.objects.in_bulk({b["brand_id"] for b in brands})
        return csv_response("locking-calendar.csv", CALENDAR_CSV_HEADER, _calendar_csv(days, brands, names))
    kept = urlencode(_kept(request, "day"))
    shown = [d for d in days if d.money or d.today]
    for d in shown:
        d.row = _calendar_row(d, f"{kept}&day={d.day.isoformat()}" if kept else f"day={d.day.isoformat()}")
    upcoming = [d for d in days if not d.past]
    context.update(days=shown, upcoming_total=_totals(upcoming), overdue=sum(d.overdue for d in days))
    return render(request, "dashboard/reports/locking.html", context)


def _calendar_row(d, query: str):
    """A calendar day's table row. Built here rather than in the template: ninety days through the
    template engine's tags cost more than the page's queries (and twice the page's time at 10k
    events, which fill a dozen days). Every text from the data is escaped."""
    css = "today" if d.today else "past" if d.past else ""
    today = ' <span class="flag">today</span>' if d.today else ""
    payouts = "<br>".join(escape(money.format_money(m["payout"], c)) for c, m in d.money.items())
    payouts = payouts or '<span class="muted">—</span>'
    if d.overdue:
        pending = 'class="flag warn" title="Locked while their last Status was pending"'
        flags = f"<span {pending}>{d.overdue} still pending</span>"
    else:
        flags = '<span class="flag ok">locked</span>' if d.past else ""
    return mark_safe(  # noqa: S308 (escaped above: the money and the query; the rest are numbers and dates)
        f'<tr class="{css}"><th scope="row" data-label="Day" class="nowrap"><a href="?{escape(query)}">'
        f"{d.day.isoformat()}</a>{today}</th>"
        f'<td class="num" data-label="Payout locking">{payouts}</td>'
        f'<td class="num" data-label="Actions">{d.actions}</td><td data-label="Flags">{flags}</td></tr>'
    )


def _totals(days) -> list[tuple[str, int, object]]:
    """(currency, actions, payout) locking on these days, per currency."""
    totals: dict[str, list] = {}
    for d in days:
        for currency, entry in d.money.items():
            slot = totals.setdefault(currency, [0, 0])
            slot[0] += entry["actions"]
            slot[1] += entry["payout"]
    return [(c, n, p) for c, (n, p) in sorted(totals.items())]


def _calendar_csv(days, brands, names):
    overdue = {(d.day, c): m["overdue"] for d in days for c, m in d.money.items()}
    past = {d.day for d in days if d.past}
    for b in sorted(brands, key=lambda b: (b["day"], b["currency"])):
        brand = names[b["brand_id"]]
        yield [b["day"].isoformat(), b["currency"], brand.campaign_id, brand.name, b["actions"],
               money.plain_amount(b["payout"], b["currency"]),
               overdue.get((b["day"], b["currency"]), 0) if b["day"] in past else ""]  # fmt: skip


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
    context = {
        "filter": filterset, "period": period, "period_error": period_error, "by": by,
        "by_label": queries.DIMENSIONS[by][0], "brand": brand, "csv_query": _csv(request),
        "keep_query": urlencode(_kept(request, "period", "start", "end", "before", "after", "value", "sort")),
        "keep_pairs": list(_kept(request, "period", "start", "end", "before", "after", "value", "sort").items()),
    }  # fmt: skip
    if "value" in filterset.cleaned() and "value" in request.GET:
        reports = queries.tracked_in(period.start, period.end, brand)
        if currency:
            reports = reports.filter(currency=currency)
        return _drill(request, context, queries.with_value(reports, by, filterset.cleaned()["value"]))
    chosen = {"brand": brand, "currency": currency}
    if wants_csv(request):
        rows = queries.performance(period.start, period.end, by, sort, **chosen, limit=PERFORMANCE_CSV_LIMIT)
        return csv_response(
            f"performance-{by}.csv", PERFORMANCE_CSV_HEADER, _performance_csv(rows[:PERFORMANCE_CSV_LIMIT], by)
        )
    rows = queries.performance(period.start, period.end, by, sort, **chosen)
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
