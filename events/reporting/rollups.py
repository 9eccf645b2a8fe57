"""Closed days of the overview and the brands list, counted once: their cost follows the page, not the data.

A day of the display zone is *closed* once it ended SETTLE ago. The figures of a period take
the run of closed days it covers from one OverviewRollup row (counted from the events and
deliveries on first need, then kept), and count only the rest live: the days not closed yet (and
a partial first day, which the dashboard's whole-day periods do not have). Both parts are exact
(money sums; delays as a histogram, not a sample), so merged they equal a count over every row
of the period (the tests check it on random histories). A rollup covers a whole run of days, not one day, because
merging thirty daily delay histograms on every view cost more than the page may.

Invalidation: the rollups that cover a day are dropped when a write lands in it.
- `changed(received_at)`, after an event is written or a delivery's outcome changes
  (the processing of a delivery, a backfill). Free unless `received_at` is over LATE_WRITE old, which
  only replays and late processing are: a postback is written seconds after it is received.
- `forget(start, end)`, by the rare writers that move or delete rows in bulk (prune, the
  demo's backdating, removing the synthetic test action, admin deletions).
A write not older than LATE_WRITE when it happens commits long before its day closes (SETTLE -
LATE_WRITE = 55 minutes later), so no rollup is counted without it.

Race: counting a rollup and dropping rollups take the same lock (a PostgreSQL advisory
transaction lock; SQLite's IMMEDIATE transactions already run one writer at a time), held to
the end of the transaction. A write that lands in a day being counted either committed before
the count took the lock (the count sees it), or drops the rollup after it was stored (its
`changed()` waits for the lock). `changed()` may be called inside the write's transaction or
after it committed: both orders are safe.
"""

from __future__ import annotations

import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from events.common.times import day_start, days_back, local_day
from events.impact import promises
from events.models import COUNTS, MONEY, ActionEvent, Brand, Delivery, OverviewRollup, sql

SETTLE = timedelta(hours=1)
LATE_WRITE = timedelta(minutes=5)
KEEP = timedelta(days=2)
LOCK_KEY = zlib.crc32(b"events.rollups")
OVERVIEW_FIELDS = ("rows", "delay_seconds", "delay_counts", "deliveries")
BRAND_FIELDS = ("brand_rows", "brand_delays")


@dataclass
class Figures:
    """What the overview shows for a period, exact.

    rows: per (day or hour, currency): events, tracked, modified, reversed, gained, changed, lost.
    delays: {delay_seconds: events}; deliveries: {outcome: deliveries}.
    """

    rows: list[dict] = field(default_factory=list)
    delays: Counter = field(default_factory=Counter)
    deliveries: Counter = field(default_factory=Counter)

    def add(self, other: Figures) -> None:
        self.rows += other.rows
        self.delays.update(other.delays)
        self.deliveries.update(other.deliveries)

    def delay_summary(self) -> dict:
        """Events with a delay, late and alert-late counts, the largest delay, and p50/p95 as
        PostgreSQL's percentile_cont computes them over the same delays."""
        histogram = sorted(self.delays.items())
        total = sum(n for _, n in histogram)
        return {
            "with_delay": total,
            "late": sum(n for delay, n in histogram if promises.is_late(delay)),
            "alert_late": sum(n for delay, n in histogram if promises.is_alert_late(delay)),
            "delay_max": histogram[-1][0] if histogram else None,
            "delay_p50": percentile_cont(histogram, total, 0.5),
            "delay_p95": percentile_cont(histogram, total, 0.95),
        }


@dataclass
class BrandFigures:
    """What the brands list shows for a period, exact.

    rows: per (brand_id, currency): events, tracked, modified, reversed, gained, changed, lost.
    delays: {brand_id: {delay_seconds: events}}.
    """

    rows: list[dict] = field(default_factory=list)
    delays: defaultdict[int, Counter] = field(default_factory=lambda: defaultdict(Counter))

    def add(self, other: BrandFigures) -> None:
        self.rows += other.rows
        for brand_id, delays in other.delays.items():
            self.delays[brand_id].update(delays)

    def percentiles(self, fraction: float) -> dict[int, float | None]:
        """{brand_id: percentile_cont(fraction) of its delays}."""
        return {
            brand_id: percentile_cont(sorted(delays.items()), sum(delays.values()), fraction)
            for brand_id, delays in self.delays.items()
        }


def percentile_cont(histogram: list[tuple[int, int]], total: int, fraction: float) -> float | None:
    """PostgreSQL's percentile_cont(fraction) of the values of an ascending [(value, count)] histogram."""
    if not total:
        return None
    position = fraction * (total - 1)
    rank = int(position)  # 0-based: the value at `rank`, interpolated towards the next one
    lower = upper = None
    seen = 0
    for value, count in histogram:
        seen += count
        if lower is None and rank < seen:
            lower = value
        if rank + 1 < seen:
            upper = value
            break
    if upper is None:  # `rank` is the last one: position is a whole number
        return float(lower)
    return float(lower) + (position - rank) * (float(upper) - float(lower))


# --- Days ------------------------------------------------------------------------------------


def closed_days(start: datetime, end: datetime, tz: tzinfo, settled: datetime) -> list[date]:
    """The whole days of `tz` inside [start, end) that ended by `settled`."""
    days = []
    day = local_day(start, tz)
    limit = min(end, settled)
    while day_start(day + timedelta(days=1), tz) <= limit:
        if day_start(day, tz) >= start:
            days.append(day)
        day += timedelta(days=1)
    return days


def gaps(start: datetime, end: datetime, days: list[date], tz: tzinfo) -> list[tuple[datetime, datetime]]:
    """[start, end) without the given days (ascending, inside it): the ranges still to count."""
    ranges = []
    cursor = start
    for day in days:
        if day_start(day, tz) > cursor:
            ranges.append((cursor, day_start(day, tz)))
        cursor = day_start(day + timedelta(days=1), tz)
    if cursor < end:
        ranges.append((cursor, end))
    return ranges


# --- Figures ---------------------------------------------------------------------------------


def figures(start: datetime, end: datetime, bucket: str, tz: tzinfo, now: datetime | None = None) -> Figures:
    """The overview's figures for [start, end), rows per `bucket` ("day" or "hour") in `tz`.

    Four queries: the closed days' rollup, then the events (rows, delays) and deliveries of the
    rest. Counting a missing rollup adds the lock, a second look, five queries over its days,
    its insert and the clean-up.
    """
    now = now or timezone.now()
    days = closed_days(start, end, tz, now - SETTLE) if bucket == "day" else []
    result = _figures(_rollup(days[0], days[-1], tz, OVERVIEW_FIELDS), tz) if days else Figures()
    result.add(_count(gaps(start, end, days, tz), bucket, tz))
    result.rows.sort(key=lambda row: (row["bucket"], row["currency"]))
    return result


def brand_figures(start: datetime, end: datetime, tz: tzinfo, now: datetime | None = None) -> BrandFigures:
    """The brands list's figures for [start, end): three queries, as figures()."""
    now = now or timezone.now()
    days = closed_days(start, end, tz, now - SETTLE)
    result = _brand_figures(_rollup(days[0], days[-1], tz, BRAND_FIELDS)) if days else BrandFigures()
    result.add(_count_brands(gaps(start, end, days, tz)))
    return result


def _count(ranges, bucket: str, tz: tzinfo) -> Figures:
    """The overview's figures of the events and deliveries received in `ranges`, counted in the database
    (the setup page's test postbacks left out: they are no brand's)."""
    events = ActionEvent.objects.in_ranges(ranges).without_tests()
    deliveries = Delivery.objects.in_ranges(ranges).without_tests(Brand.TEST_ACTION_PREFIX)
    return Figures(
        rows=events.period_rows(bucket, tz),
        delays=Counter(dict(events.delay_histogram())),
        deliveries=Counter(deliveries.outcome_counts()),
    )


def _count_brands(ranges) -> BrandFigures:
    """The brands list's figures of the events received in `ranges`, counted in the database."""
    events = ActionEvent.objects.in_ranges(ranges)
    result = BrandFigures(rows=events.brand_rows())
    for brand_id, delay, n in events.delay_histogram("brand_id"):
        result.delays[brand_id][delay] = n
    return result


def _rollup(first: date, last: date, tz: tzinfo, fields: tuple[str, ...]) -> OverviewRollup:
    """The rollup of the closed days first..last (reading only `fields`), counted and stored if missing."""
    rollups = OverviewRollup.objects.only(*fields).filter(zone=str(tz), first_day=first, last_day=last)
    rollup = rollups.first()
    if rollup is None:
        with transaction.atomic():
            _lock()
            rollup = rollups.first() or _store(first, last, tz)  # counted while we waited?
    return rollup


def _store(first: date, last: date, tz: tzinfo) -> OverviewRollup:
    """Count the days first..last for both pages and keep them."""
    starts_at, ends_at = day_start(first, tz), day_start(last + timedelta(days=1), tz)
    counted = _count([(starts_at, ends_at)], "day", tz)
    brands = _count_brands([(starts_at, ends_at)])
    delay_seconds, delay_counts = _lists(counted.delays)
    rollup = OverviewRollup.objects.create(
        zone=str(tz),
        first_day=first,
        last_day=last,
        starts_at=starts_at,
        ends_at=ends_at,
        rows=[
            _stored(row, day=local_day(row["bucket"], tz).isoformat(), currency=row["currency"]) for row in counted.rows
        ],
        delay_seconds=delay_seconds,
        delay_counts=delay_counts,
        deliveries=dict(counted.deliveries),
        brand_rows=[_stored(row, brand_id=row["brand_id"], currency=row["currency"]) for row in brands.rows],
        brand_delays={brand_id: _lists(delays) for brand_id, delays in brands.delays.items()},
    )
    # Rollups of periods seen days ago (yesterday's "last 30 days" is one) are not read again.
    OverviewRollup.objects.filter(computed_at__lt=rollup.computed_at - KEEP).delete()
    return rollup


def _stored(row: dict, **keys) -> dict:
    """A counted row as JSON: its keys, the counts, the money as exact decimal strings."""
    return {**keys, **{name: row[name] for name in COUNTS}, **{name: str(row[name]) for name in MONEY}}


def _loaded(row: dict, **extra) -> dict:
    return {**row, **{name: Decimal(row[name]) for name in MONEY}, **extra}


def _lists(histogram: Counter) -> list[list[int]]:
    """[delays, ascending], [events with each]: two flat lists parse much faster than one list of pairs."""
    delays = sorted(histogram)
    return [delays, [histogram[delay] for delay in delays]]


def _histogram(delay_seconds: list[int], delay_counts: list[int]) -> Counter:
    return Counter(dict(zip(delay_seconds, delay_counts, strict=True)))


def _figures(rollup: OverviewRollup, tz: tzinfo) -> Figures:
    return Figures(
        rows=[_loaded(row, bucket=day_start(date.fromisoformat(row["day"]), tz)) for row in rollup.rows],
        delays=_histogram(rollup.delay_seconds, rollup.delay_counts),
        deliveries=Counter(rollup.deliveries),
    )


def _brand_figures(rollup: OverviewRollup) -> BrandFigures:
    result = BrandFigures(rows=[_loaded(row) for row in rollup.brand_rows])
    for brand_id, (delay_seconds, delay_counts) in rollup.brand_delays.items():
        result.delays[int(brand_id)] = _histogram(delay_seconds, delay_counts)
    return result


# --- Counting ahead --------------------------------------------------------------------------

# The dashboard's periods counted by day, in days up to today (its 24-hour one counts by hour and
# reads no rollup): the last 7 and 30 whole days, today included (events.common.times.days_back).
WARM_PERIODS = (7, 30)


def warm(now: datetime | None = None) -> int:
    """Count the rollups the overview's and the brands list's 7- and 30-day periods will read, if
    they are missing, so the first view of the day does not (the delay watcher calls this every
    pass). Returns how many were counted; one query when there is nothing to do."""
    now = now or timezone.now()
    tz = ZoneInfo(settings.DISPLAY_TIME_ZONE)
    wanted = {
        (days[0], days[-1])
        for days in (closed_days(days_back(now, length, tz), now, tz, now - SETTLE) for length in WARM_PERIODS)
        if days
    }
    stored = set(
        OverviewRollup.objects.filter(zone=str(tz), first_day__in={first for first, _ in wanted}).values_list(
            "first_day", "last_day"
        )
    )
    missing = wanted - stored
    for first, last in sorted(missing):
        _rollup(first, last, tz, ("id",))
    return len(missing)


# --- Invalidation ----------------------------------------------------------------------------


def _lock() -> None:
    """Held to the end of the transaction: counting days and dropping rollups wait for each other."""
    sql.advisory_xact_lock(LOCK_KEY)


def changed(*received_at: datetime, now: datetime | None = None) -> None:
    """Events or delivery outcomes received at these times were just written: drop the rollups of
    their days if they may be closed (one statement for a whole batch). Call it after the writes,
    inside their transaction or after it committed. Costs nothing (no query) for writes less than
    LATE_WRITE after their `received_at`."""
    limit = (now or timezone.now()) - LATE_WRITE
    old = [moment for moment in received_at if moment <= limit]
    if old:
        forget(min(old), max(old))


def forget(start: datetime | None = None, end: datetime | None = None) -> int:
    """Drop the rollups (every zone) of the days that overlap [start, end]; None: unbounded."""
    rollups = OverviewRollup.objects.all()
    if start is not None:
        rollups = rollups.filter(ends_at__gt=start)
    if end is not None:
        rollups = rollups.filter(starts_at__lte=end)
    with transaction.atomic():
        _lock()
        deleted, _ = rollups.delete()
    return deleted
