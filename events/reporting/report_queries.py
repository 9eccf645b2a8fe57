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
from django.db.models.functions import Cast, Coalesce, Upper

from events.common.times import day_start, local_day
from events.models import Action, ActionReport, Brand, StatusGroup, StatusTotal

from . import reports

BUCKETS = ("pending", "approved", "locked", "reversed")
NOT_APPROVED = (StatusGroup.PENDING, StatusGroup.OTHER)
CALENDAR_PAST_DAYS = 30
CALENDAR_NEXT_DAYS = 60
SEARCH_LIMIT = 50
SEARCH_PART_MIN = 3  # a part of an order id: at least this many characters (fewer match too much)
PERFORMANCE_LIMIT = 200

# The dimensions of the performance page: its `by` values, their labels and report fields.
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


def status_now(now: datetime, brand: Brand | None = None) -> list[dict]:
    """Every action as it stands now, by status bucket per currency: StatusTotal's rows (locking days
    before today are locked, after it not), and today's lockings from the reports (locked if the
    locking time passed). Three queries once the totals are counted."""
    reports.ensure_totals(now)
    tz = ZoneInfo(reports.zone())
    today = local_day(now, tz)
    totals = without_tests(StatusTotal.objects.filter(zone=reports.zone()))
    if brand is not None:
        totals = totals.filter(brand=brand)
    past = models.Q(locking_day__lt=today)
    rows = list(
        totals.order_by()
        .values("currency", "group")
        .annotate(
            n=_count("actions"), p=_sum("payout"), locked_n=_count("actions", past), locked_p=_sum("payout", past)
        )
    )
    todays = without_tests(
        ActionReport.objects.filter(reversed=False, locking_date__gte=day_start(today, tz), locking_date__lte=now)
    )
    if brand is not None:
        todays = todays.filter(brand=brand)
    locked_today = {
        (r["currency"], r["group"]): r
        for r in todays.order_by().values("currency", "group").annotate(n=models.Count("id"), p=_sum("payout"))
    }
    for row in rows:
        extra = locked_today.get((row["currency"], row["group"]))
        if extra and row["group"] != StatusGroup.REVERSED:
            row["locked_n"] += extra["n"]
            row["locked_p"] += extra["p"]
    return _folded(rows)


def status_for_period(start: datetime, end: datetime, now: datetime, brand: Brand | None = None) -> list[dict]:
    """The actions tracked in [start, end), by the status bucket they are in now, per currency: one
    query over the period's range of report_tracked (or report_brand_tracked)."""
    rows = without_tests(ActionReport.objects.filter(tracked_at__gte=start, tracked_at__lt=end))
    if brand is not None:
        rows = rows.filter(brand=brand)
    locked = models.Q(reversed=False, locking_date__lte=now)
    return _folded(
        list(
            rows.order_by()
            .values("currency", "group")
            .annotate(
                n=models.Count("id"),
                p=_sum("payout"),
                locked_n=models.Count("id", filter=locked),
                locked_p=_sum("payout", locked),
            )
        )
    )


# --- Locking calendar --------------------------------------------------------------------------


@dataclass
class CalendarDay:
    day: date
    past: bool  # its locking time has passed for every action of the day (today is not past)
    today: bool
    money: dict[str, dict] = field(default_factory=dict)  # {currency: {actions, payout, overdue, brands}}

    @property
    def actions(self) -> int:
        return sum(m["actions"] for m in self.money.values())

    @property
    def overdue(self) -> int:
        return sum(m["overdue"] for m in self.money.values())


def calendar(now: datetime, brand: Brand | None = None, currency: str | None = None) -> list[CalendarDay]:
    """The last CALENDAR_PAST_DAYS days, today and the next CALENDAR_NEXT_DAYS, each with the payout of
    the not reversed actions that lock on it, per currency and brand, and how many were still pending
    (flagged once the day passed): one query over StatusTotal's rows of those days."""
    reports.ensure_totals(now)
    today = local_day(now, ZoneInfo(reports.zone()))
    first, last = today - timedelta(days=CALENDAR_PAST_DAYS), today + timedelta(days=CALENDAR_NEXT_DAYS)
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
    )
    days = {first + timedelta(days=i): None for i in range((last - first).days + 1)}
    result = {day: CalendarDay(day, past=day < today, today=day == today) for day in days}
    for row in rows:
        entry = result[row["locking_day"]].money.setdefault(
            row["currency"], {"actions": 0, "payout": Decimal(0), "overdue": 0, "brands": []}
        )
        entry["actions"] += row["n"]
        entry["payout"] += row["p"]
        entry["overdue"] += row["pending"] if row["locking_day"] < today else 0
        entry["brands"].append((row["brand_id"], row["n"], row["p"]))
    return list(result.values())


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


def performance(reports_qs, by: str, sort: str, limit: int = PERFORMANCE_LIMIT) -> list[dict]:
    """Per value of the dimension `by` and currency: actions tracked, those of them reversed by now
    (a cohort: never more than tracked), payout gained, changed, lost and net; ordered by currency,
    then by `sort` (a PERFORMANCE_SORTS name, "-" first for descending); at most `limit` + 1 rows (the
    one more says there are more)."""
    column = DIMENSIONS[by][1]
    key = sort.lstrip("-")
    rows = (
        reports_qs.order_by()
        .values(value=models.F(column), currency_code=models.F("currency"))
        .annotate(
            tracked=models.Count("id"),
            reversed_n=models.Count("id", filter=models.Q(reversed=True)),
            gained_sum=_sum("gained"),
            changed_sum=_sum("changed"),
            lost_sum=_sum("lost"),
        )
        .annotate(
            net_sum=models.F("gained_sum") + models.F("changed_sum") + models.F("lost_sum"),
            rate=Cast("reversed_n", models.FloatField()) / Cast("tracked", models.FloatField()),
        )
    )
    order = {
        "value": "value",
        "tracked": "tracked",
        "reversed": "reversed_n",
        "reversed_rate": "rate",
        "gained": "gained_sum",
        "lost": "lost_sum",
        "net": "net_sum",
    }[key]
    descending = sort.startswith("-")
    rows = rows.order_by("currency_code", f"-{order}" if descending else order, "value")
    return [
        {
            "value": r["value"],
            "currency": r["currency_code"],
            "tracked": r["tracked"],
            "reversed": r["reversed_n"],
            "reversed_rate": r["rate"],
            "gained": r["gained_sum"],
            "changed": r["changed_sum"],
            "lost": r["lost_sum"],
            "net": r["net_sum"],
        }
        for r in rows[: limit + 1]
    ]


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
