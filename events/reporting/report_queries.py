"""What the reports read: money by status (as of now, and for the actions tracked in a period), the
locking calendar, performance by dimension, and the search across brands. Each is a fixed number
of queries over bounded rows: StatusTotal's few keys, or one index range of ActionReport (see the
indexes in events/models/reports.py). Pure reads: reports.py keeps the tables.

Status buckets partition the actions: reversed (its state or Status says so); locked (not reversed,
its locking date passed); pending and approved (the rest, by Status; a Status word outside
impact.com's known ones counts as pending). An action still pending when its locking date passed
is locked and flagged: impact.com sends nothing when an action locks, so either the brand approved
it without a postback, or it is worth asking about.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db import models
from django.db.models.functions import Coalesce, Upper

from events.common.times import day_start, local_day
from events.models import (
    Action,
    ActionReport,
    Brand,
    DayTotal,
    DimensionTotal,
    StatusGroup,
    StatusTotal,
    TrackedTotal,
)

from . import reports

BUCKETS = ("pending", "approved", "locked", "reversed")
NOT_APPROVED = (StatusGroup.PENDING, StatusGroup.OTHER)
CALENDAR_PAST_DAYS = 30
CALENDAR_NEXT_DAYS = 60
SEARCH_LIMIT = 50
SEARCH_PART_MIN = 3  # a part of an order id: at least this many characters (fewer match too much)
PERFORMANCE_LIMIT = 200

# The dimensions of the performance page: its `by` values, their labels and report fields (the
# dimensions DimensionTotal counts: reports.DIMENSION_FIELDS).
DIMENSIONS = {
    "sub_id1": ("SubId1", "sub_id1"),
    "sub_id2": ("SubId2", "sub_id2"),
    "sub_id3": ("SubId3", "sub_id3"),
    "tracker": ("Tracker", "tracker"),
    "promo_code": ("Promo code", "promo_code"),
    "referring_type": ("Referring type", "referring_type"),
}
PERFORMANCE_SORTS = ("value", "tracked", "reversed", "reversed_rate", "gained", "lost", "net")


def _sum(name: str, only: models.Q | None = None):
    return Coalesce(models.Sum(name, filter=only), Decimal(0), output_field=_decimal())


def _count(name: str, only: models.Q | None = None):
    return Coalesce(models.Sum(name, filter=only), 0)


def _decimal():
    return models.DecimalField(max_digits=24, decimal_places=6)


def without_tests(queryset):
    """Not the setup page's synthetic test postbacks (in no total)."""
    return queryset.exclude(brand__in=Brand.objects.tests().values("id"))


# --- Money by status ---------------------------------------------------------------------------


def _folded(rows: list[dict]) -> list[dict]:
    """Rows of (currency, group, n, p, locked_n, locked_p) as one card per currency: the four buckets
    with actions and payout, and the flagged "pending past its locking date"; busiest currency first."""
    cards: dict[str, dict] = {}
    for row in rows:
        card = cards.setdefault(row["currency"], _empty_card(row["currency"]))
        n, p, locked_n, locked_p = row["n"], row["p"], row["locked_n"], row["locked_p"]
        if row["group"] == StatusGroup.REVERSED:
            _add(card["reversed"], n, p)
            continue
        _add(card["locked"], locked_n, locked_p)
        _add(card["approved" if row["group"] == StatusGroup.APPROVED else "pending"], n - locked_n, p - locked_p)
        if row["group"] in NOT_APPROVED:
            _add(card["overdue"], locked_n, locked_p)
    for card in cards.values():
        card["actions"] = sum(card[name]["actions"] for name in BUCKETS)
    return sorted(cards.values(), key=lambda card: (-card["actions"], card["currency"]))


def _empty_card(currency: str) -> dict:
    return {"currency": currency, **{name: {"actions": 0, "payout": Decimal(0)} for name in (*BUCKETS, "overdue")}}


def _add(slot: dict, n: int, p: Decimal) -> None:
    slot["actions"] += n
    slot["payout"] += p


def split_days(start: datetime, end: datetime, tz) -> tuple[date, date, models.Q]:
    """[start, end) as its whole days of `tz` (first, last: none if first > last), which the totals by
    day tracked hold, and a Q of `tracked_at` in what is left at either end (a period that starts or
    ends within a day: "the last 24 hours", a preset's today up to now), read from the reports."""
    first = local_day(start, tz)
    if day_start(first, tz) < start:
        first += timedelta(days=1)
    last = local_day(end, tz) - timedelta(days=1)
    if first > last:
        return first, last, models.Q(tracked_at__gte=start, tracked_at__lt=end)
    edges = models.Q()
    if start < day_start(first, tz):
        edges |= models.Q(tracked_at__gte=start, tracked_at__lt=day_start(first, tz))
    if day_start(last + timedelta(days=1), tz) < end:
        edges |= models.Q(tracked_at__gte=day_start(last + timedelta(days=1), tz), tracked_at__lt=end)
    return first, last, edges


def _merged(groups: list[list[dict]], key: tuple[str, ...], sums: tuple[str, ...]) -> list[dict]:
    """Rows of the same key added up; the keys without actions left out (a total's key whose actions
    all moved to another one stays, at zero)."""
    merged: dict[tuple, dict] = {}
    for rows in groups:
        for row in rows:
            slot = merged.setdefault(tuple(row[k] for k in key), {k: row[k] for k in key} | dict.fromkeys(sums, 0))
            for name in sums:
                slot[name] += row[name]
    return [row for row in merged.values() if row[sums[0]]]


STATUS_SUMS = ("n", "p", "locked_n", "locked_p")


def money_by_status(
    now: datetime, start: datetime, end: datetime, brand: Brand | None = None
) -> tuple[list[dict], list[dict]]:
    """The cards of every action as it stands now (status_now), and of the actions tracked in
    [start, end) by the bucket they are in now (status_for_period): five queries once the totals are
    counted (the look, the totals now, the period's TrackedTotal, today's lockings for both, the
    reports tracked in what is left of the period at either end), whatever the period's length."""
    reports.ensure_totals(now)
    tz = ZoneInfo(reports.zone())
    days = split_days(start, end, tz)
    todays = _locked_today(now, tz, brand, days)
    return _status_now(now, tz, brand, todays), _status_for_period(now, tz, brand, days, todays)


def status_now(now: datetime, brand: Brand | None = None) -> list[dict]:
    """Every action as it stands now, by status bucket per currency: the totals' rows (DayTotal across
    brands, StatusTotal for one; locking days before today are locked, after it not), and today's
    lockings from the reports (locked if the locking time passed). Three queries once counted."""
    reports.ensure_totals(now)
    tz = ZoneInfo(reports.zone())
    return _status_now(now, tz, brand, _locked_today(now, tz, brand, None))


def status_for_period(start: datetime, end: datetime, now: datetime, brand: Brand | None = None) -> list[dict]:
    """The actions tracked in [start, end), by the status bucket they are in now, per currency:
    TrackedTotal's rows of its whole days (locking days before today are locked, after it not; those
    locking today read from the reports), and the reports tracked in what is left at either end
    (today up to now)."""
    reports.ensure_totals(now)
    tz = ZoneInfo(reports.zone())
    days = split_days(start, end, tz)
    return _status_for_period(now, tz, brand, days, _locked_today(now, tz, brand, days))


def _status_now(now: datetime, tz, brand: Brand | None, todays: dict) -> list[dict]:
    today = local_day(now, tz)
    if brand is None:
        totals = DayTotal.objects.filter(zone=reports.zone())
    else:
        totals = without_tests(StatusTotal.objects.filter(zone=reports.zone(), brand=brand))
    locked = [{**r, "n": 0, "p": 0, "locked_n": r["n"], "locked_p": r["p"]} for r in todays.values()]
    return _folded(_merged([list(_by_bucket(totals, today)), locked], ("currency", "group"), STATUS_SUMS))


def _by_bucket(totals, today: date):
    """A total's rows summed per currency and status group: actions and payout, and those whose
    locking day is before today (locked)."""
    past = models.Q(locking_day__lt=today)
    return (
        totals.order_by()
        .values("currency", "group")
        .annotate(
            n=_count("actions"), p=_sum("payout"), locked_n=_count("actions", past), locked_p=_sum("payout", past)
        )
    )


def _status_for_period(now: datetime, tz, brand: Brand | None, days: tuple, todays: dict) -> list[dict]:
    today = local_day(now, tz)
    first, last, edges = days
    parts = []
    if first <= last:
        totals = without_tests(
            TrackedTotal.objects.filter(zone=reports.zone(), tracked_day__gte=first, tracked_day__lte=last)
        )
        if brand is not None:
            totals = totals.filter(brand=brand)
        parts.append(_by_bucket(totals, today))
        parts.append(
            [{**r, "n": 0, "p": 0, "locked_n": r["period_n"], "locked_p": r["period_p"]} for r in todays.values()]
        )
    if edges.children:
        rows = without_tests(ActionReport.objects.filter(edges))
        if brand is not None:
            rows = rows.filter(brand=brand)
        parts.append(_counted(rows, "locked", models.Q(reversed=False, locking_date__lte=now)))
    return _folded(_merged([list(part) for part in parts], ("currency", "group"), STATUS_SUMS))


def _locked_today(now: datetime, tz, brand: Brand | None, days: tuple | None) -> dict:
    """{(currency, group): {n, p, period_n, period_p}} of the not reversed actions whose locking time
    passed today (the totals count their day as not locked yet); period_n and period_p: those of them
    tracked in the whole days of `days` (split_days), which TrackedTotal holds. One query."""
    todays = without_tests(
        ActionReport.objects.filter(
            reversed=False, locking_date__gte=day_start(local_day(now, tz), tz), locking_date__lte=now
        )
    )
    if brand is not None:
        todays = todays.filter(brand=brand)
    in_period = models.Q(pk__in=[])
    if days is not None and days[0] <= days[1]:
        in_period = models.Q(
            tracked_at__gte=day_start(days[0], tz), tracked_at__lt=day_start(days[1] + timedelta(days=1), tz)
        )
    return {(r["currency"], r["group"]): r for r in _counted(todays, "period", in_period)}


def _counted(reports, name: str, condition: models.Q):
    """Reports' actions (n) and payout (p) per currency and status group, and those of them that meet
    `condition` as `{name}_n` and `{name}_p`. One query."""
    return (
        reports.order_by()
        .values("currency", "group")
        .annotate(
            n=models.Count("id"),
            p=_sum("payout"),
            **{f"{name}_n": models.Count("id", filter=condition), f"{name}_p": _sum("payout", condition)},
        )
    )


# --- Locking calendar --------------------------------------------------------------------------


@dataclass
class CalendarDay:
    day: date
    past: bool  # its locking time has passed for every action of the day (today is not past)
    today: bool
    money: dict[str, dict] = field(default_factory=dict)  # {currency: {actions, payout, overdue}}

    @property
    def actions(self) -> int:
        return sum(m["actions"] for m in self.money.values())

    @property
    def overdue(self) -> int:
        return sum(m["overdue"] for m in self.money.values())


def calendar(now: datetime, brand: Brand | None = None, currency: str | None = None) -> list[CalendarDay]:
    """The last CALENDAR_PAST_DAYS days, today and the next CALENDAR_NEXT_DAYS, each with the payout of
    the not reversed actions that lock on it, per currency, and how many were still pending (flagged
    once the day passed): one query over DayTotal's rows of those days (StatusTotal's for one brand),
    a few per day whatever the number of brands (a day's brands: `locking_brands`)."""
    reports.ensure_totals(now)
    today = local_day(now, ZoneInfo(reports.zone()))
    first, last = calendar_window(now)
    rows = (
        _locking_totals(brand, currency)
        .filter(locking_day__gte=first, locking_day__lte=last)
        .order_by()
        .values("locking_day", "currency")
        .annotate(n=_count("actions"), p=_sum("payout"), pending=_count("actions", models.Q(group__in=NOT_APPROVED)))
    )
    days = {first + timedelta(days=i): None for i in range((last - first).days + 1)}
    result = {day: CalendarDay(day, past=day < today, today=day == today) for day in days}
    for row in rows:
        if row["n"]:  # a key whose actions all moved to another stays, at zero
            result[row["locking_day"]].money[row["currency"]] = {
                "actions": row["n"],
                "payout": row["p"],
                "overdue": row["pending"] if row["locking_day"] < today else 0,
            }
    return list(result.values())


def _locking_totals(brand: Brand | None, currency: str | None):
    """The totals of the not reversed actions by locking day: across brands, or of one."""
    if brand is None:
        totals = DayTotal.objects.filter(zone=reports.zone())
    else:
        totals = without_tests(StatusTotal.objects.filter(zone=reports.zone(), brand=brand))
    totals = totals.exclude(group=StatusGroup.REVERSED)
    return totals.filter(currency=currency) if currency is not None else totals


def locking_brands(first: date, last: date, brand: Brand | None = None, currency: str | None = None) -> list[dict]:
    """Per locking day from `first` to `last`, currency and brand: the not reversed actions, their
    payout and how many are pending ({day, currency, brand_id, actions, payout, pending}), by day and
    currency, the largest payout first: a day's brands, and the calendar's CSV. One query over
    StatusTotal's rows of those days."""
    reports.ensure_totals()
    totals = without_tests(
        StatusTotal.objects.filter(zone=reports.zone(), locking_day__gte=first, locking_day__lte=last).exclude(
            group=StatusGroup.REVERSED
        )
    )
    if brand is not None:
        totals = totals.filter(brand=brand)
    if currency is not None:
        totals = totals.filter(currency=currency)
    rows = (
        totals.order_by()
        .values("locking_day", "currency", "brand_id")
        .annotate(n=_count("actions"), p=_sum("payout"), pending=_count("actions", models.Q(group__in=NOT_APPROVED)))
        .order_by("locking_day", "currency", "-p", "brand_id")
    )
    return [
        {"day": r["locking_day"], "currency": r["currency"], "brand_id": r["brand_id"], "actions": r["n"],
         "payout": r["p"], "pending": r["pending"]}
        for r in rows
        if r["n"]
    ]  # fmt: skip


def calendar_window(now: datetime) -> tuple[date, date]:
    """The calendar's first and last day."""
    today = local_day(now, ZoneInfo(reports.zone()))
    return today - timedelta(days=CALENDAR_PAST_DAYS), today + timedelta(days=CALENDAR_NEXT_DAYS)


def locking_on(day: date, tz, brand: Brand | None = None, currency: str | None = None):
    """The not reversed actions that lock on `day`, as a queryset for keyset paging on locking_date
    (report_locking)."""
    rows = without_tests(
        ActionReport.objects.filter(
            reversed=False,
            locking_date__gte=day_start(day, tz),
            locking_date__lt=day_start(day + timedelta(days=1), tz),
        )
    )
    if brand is not None:
        rows = rows.filter(brand=brand)
    if currency is not None:
        rows = rows.filter(currency=currency)
    return rows.select_related("action", "brand")


# --- Performance by dimension ------------------------------------------------------------------


def tracked_in(start: datetime, end: datetime, brand: Brand | None = None):
    """The reports of the actions first seen in [start, end) (report_tracked, report_brand_tracked)."""
    rows = without_tests(ActionReport.objects.filter(tracked_at__gte=start, tracked_at__lt=end))
    return rows.filter(brand=brand) if brand is not None else rows


PERFORMANCE_SUMS = ("tracked", "reversed", "gained", "changed", "lost")


def performance(
    start: datetime,
    end: datetime,
    by: str,
    sort: str,
    brand: Brand | None = None,
    currency: str | None = None,
    limit: int = PERFORMANCE_LIMIT,
) -> list[dict]:
    """Per value of the dimension `by` and currency, over the actions tracked in [start, end): actions
    tracked, those of them reversed by now (a cohort: never more than tracked), payout gained,
    changed, lost and net; ordered by currency, then by `sort` (a PERFORMANCE_SORTS name, "-" first
    for descending), then by value; at most `limit` + 1 rows (the one more says there are more).
    DimensionTotal's rows of the period's whole days and the reports of what is left at either end
    (today up to now): two queries whatever the period's length, ordered here (by code point, as
    PostgreSQL's C collation and SQLite do)."""
    reports.ensure_totals()
    tz = ZoneInfo(reports.zone())
    first, last, edges = split_days(start, end, tz)
    money = {name: _sum(name) for name in ("gained", "changed", "lost")}
    parts = []
    if first <= last:
        totals = without_tests(
            DimensionTotal.objects.filter(
                zone=reports.zone(), dimension=by, tracked_day__gte=first, tracked_day__lte=last
            )
        )
        parts.append(
            _chosen(totals, brand, currency)
            .order_by()
            .values("value", "currency")
            .annotate(tracked=_count("tracked"), reversed=_count("reversed"), **money)
        )
    if edges.children:
        rows = _chosen(without_tests(ActionReport.objects.filter(edges)), brand, currency)
        parts.append(
            rows.order_by()
            .values("currency", value=models.F(DIMENSIONS[by][1]))
            .annotate(tracked=models.Count("id"), reversed=models.Count("id", filter=models.Q(reversed=True)), **money)
        )
    rows = _merged([list(part) for part in parts], ("value", "currency"), PERFORMANCE_SUMS)
    for row in rows:
        row["net"] = row["gained"] + row["changed"] + row["lost"]
        row["reversed_rate"] = row["reversed"] / row["tracked"]
    key = sort.lstrip("-")
    sign = -1 if sort.startswith("-") and key != "value" else 1
    if key == "value":
        rows.sort(key=lambda r: r["value"], reverse=sort.startswith("-"))
    else:
        rows.sort(key=lambda r: (sign * r[key], r["value"]))
    rows.sort(key=lambda r: r["currency"])  # stable: within each currency, the order above
    return rows[: limit + 1]


def _chosen(queryset, brand: Brand | None, currency: str | None):
    if brand is not None:
        queryset = queryset.filter(brand=brand)
    return queryset.filter(currency=currency) if currency else queryset


def with_value(reports_qs, by: str, value: str):
    """The reports whose dimension `by` is exactly `value` (the drill-down from a performance row)."""
    return reports_qs.filter(**{DIMENSIONS[by][1]: value}).select_related("action", "brand")


# --- Search ------------------------------------------------------------------------------------


def search(text: str) -> dict:
    """Across brands: the action with this ActionId, the actions whose order id is it or contains it
    (SEARCH_PART_MIN characters at least), those with it as a SubId (any of the three, whatever the
    case), and the brands named so or with this campaign id. At most SEARCH_LIMIT + 1 of each, newest
    first; six queries."""
    text = text.strip()
    upper = text.upper()
    actions = Action.objects.select_related("brand").order_by("-first_received_at", "-id")
    by_id = list(actions.filter(action_id=text)[:1])
    if len(text) >= SEARCH_PART_MIN:
        # UPPER(oid) LIKE '%…%': the trigram index action_oid_trgm on PostgreSQL (migration 0010_reports).
        orders = actions.alias(oid_ci=Upper("oid")).filter(oid_ci__contains=upper)
    else:
        orders = actions.filter(oid=text)
    by_order = list(orders[: SEARCH_LIMIT + 1])
    by_sub_id = []
    seen = set()
    for n in (1, 2, 3):
        # report_sub_idN_ci: UPPER(sub_idN) = …, newest first from the index.
        rows = (
            ActionReport.objects.alias(ci=Upper(f"sub_id{n}"))
            .filter(ci=upper)
            .order_by("-tracked_at")
            .select_related("action", "brand")[: SEARCH_LIMIT + 1]
        )
        for row in rows:
            if row.action_id not in seen:
                seen.add(row.action_id)
                row.matched = f"SubId{n}"
                by_sub_id.append(row)
    brands = list(Brand.objects.search(text)[: SEARCH_LIMIT + 1])
    return {"action": by_id, "orders": by_order, "sub_ids": by_sub_id, "brands": brands}
