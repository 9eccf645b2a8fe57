"""The totals (DayTotal, TrackedTotal, DimensionTotal) against counts over every report: random
histories sent through the real endpoint over forty days (new actions, modifications that move
money, status and SubId, reversals), with the totals kept batch by batch, then counted again from
the reports; and the money by status (now, and for a period) and the performance by dimension they
give, against the same figures summed over the reports."""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from tests_dashboard_common import NOW, iso

from dashboard.periods import parse_period
from events.common.times import local_day
from events.models import NO_LOCKING_DAY, ActionReport, Brand, DayTotal, DimensionTotal, ReportZone, TrackedTotal
from events.reporting import report_queries as queries
from events.reporting import reports

ZONE = "America/Los_Angeles"  # days that do not start at midnight UTC
BRANDS = [
    {"CampaignId": "1001", "CampaignName": "Acme Shoes"},
    {"CampaignId": "2002", "CampaignName": "Nord Books", "Currency": "EUR"},
    {"CampaignId": "3003", "CampaignName": "Coast Tea"},
]
SUB_IDS = ["blog", "news", "BLOG", ""]


def random_postbacks(seed: int, actions: int = 30) -> list[tuple]:
    """(arrival, params) of `actions` random histories, in arrival order."""
    rng = random.Random(seed)
    sent = []
    for n in range(actions):
        brand = rng.choice(BRANDS)
        tracked = NOW - timedelta(days=rng.uniform(0, 40))
        payout = Decimal(rng.randint(1, 90))
        common = {"ActionId": f"X{seed}-{n}", **brand}
        locking = tracked + timedelta(days=rng.choice([-1, 10, 20, 30, 45]), hours=rng.randint(0, 23))
        first = {
            **common, "Status": rng.choice(["PENDING", "APPROVED", "ODD"]), "Payout": f"{payout:.2f}",
            "SubId1": rng.choice(SUB_IDS), "ActionTrackerId": rng.choice(["7", "8"]), "CreationDate": iso(tracked),
            "PromoCode": rng.choice(["", "SAVE10"]),
        }  # fmt: skip
        if rng.random() < 0.8:
            first["LockingDate"] = iso(locking)
        sent.append((tracked, first))
        moment = tracked
        if rng.random() < 0.4:
            moment += timedelta(hours=rng.uniform(1, 200))
            delta = Decimal(rng.randint(-5, 9))
            payout += delta
            sent.append((moment, {
                **first, "Status": rng.choice(["PENDING", "APPROVED"]), "Payout": f"{payout:.2f}",
                "DeltaPayout": f"{delta:.2f}", "SubId1": rng.choice(SUB_IDS), "UpdateDate": iso(moment),
            }))  # fmt: skip
        if rng.random() < 0.3:
            moment += timedelta(hours=rng.uniform(1, 200))
            sent.append((moment, {
                **first, "Status": "REVERSED", "Payout": "0.00", "DeltaPayout": f"-{payout:.2f}", "UpdateDate": iso(moment),
            }))  # fmt: skip
    return sorted((m, p) for m, p in sent if m < NOW)


@pytest.fixture
def random_history(send, time_machine, settings):
    """Send one seed's histories, each postback when it arrives, the totals counted beforehand (so
    every batch adds its changes to them); then look at the pages a minute after NOW."""
    settings.DISPLAY_TIME_ZONE = ZONE

    def _send_all(seed: int):
        time_machine.move_to(NOW - timedelta(days=41), tick=False)
        reports.ensure_totals()
        for moment, params in random_postbacks(seed):
            time_machine.move_to(moment, tick=False)
            send(**params)
        time_machine.move_to(NOW + timedelta(minutes=1), tick=False)

    return _send_all


def counted_from_reports() -> tuple[dict, dict, dict]:
    """DayTotal's, TrackedTotal's and DimensionTotal's figures summed over every report, in Python."""
    tz = ZoneInfo(ZONE)
    days: dict = {}
    tracked: dict = {}
    dimensions: dict = {}
    for r in ActionReport.objects.all():
        day = local_day(r.tracked_at, tz)
        locking_day = local_day(r.locking_date, tz) if r.locking_date else NO_LOCKING_DAY
        n, p = days.get((locking_day, r.currency, r.group), (0, Decimal(0)))
        days[(locking_day, r.currency, r.group)] = (n + 1, p + (r.payout or 0))
        key = (day, r.brand_id, r.currency, r.group, locking_day)
        n, p = tracked.get(key, (0, Decimal(0)))
        tracked[key] = (n + 1, p + (r.payout or 0))
        for name in reports.DIMENSION_FIELDS:
            key = (name, day, r.brand_id, r.currency, getattr(r, name))
            sums = dimensions.get(key, (0, 0, Decimal(0), Decimal(0), Decimal(0)))
            dimensions[key] = tuple(a + b for a, b in zip(sums, (1, int(r.reversed), r.gained, r.changed, r.lost)))
    return days, tracked, dimensions


def stored_totals() -> tuple[dict, dict, dict]:
    """The same from the tables, their empty keys left out."""
    days = {
        (t.locking_day, t.currency, t.group): (t.actions, t.payout)
        for t in DayTotal.objects.filter(zone=ZONE)
        if t.actions or t.payout
    }
    tracked = {
        (t.tracked_day, t.brand_id, t.currency, t.group, t.locking_day): (t.actions, t.payout)
        for t in TrackedTotal.objects.filter(zone=ZONE)
        if t.actions or t.payout
    }
    dimensions = {}
    for t in DimensionTotal.objects.filter(zone=ZONE):
        sums = (t.tracked, t.reversed, t.gained, t.changed, t.lost)
        if any(sums):
            dimensions[(t.dimension, t.tracked_day, t.brand_id, t.currency, t.value)] = sums
    return days, tracked, dimensions


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_totals_kept_batch_by_batch_equal_the_counts_over_every_report(random_history, seed):
    random_history(seed)
    assert ReportZone.objects.get().zone == ZONE  # kept, never counted again
    kept = stored_totals()
    assert kept == counted_from_reports()
    assert sum(n for n, _ in kept[1].values()) == ActionReport.objects.count()
    reports.forget()
    reports.ensure_totals()
    assert stored_totals() == kept  # and counting them again from the reports gives the same


def status_from_reports(start, end, now, brand=None) -> dict:
    """{(currency, group): (n, payout, locked n, locked payout)} of the reports tracked in [start, end)."""
    sums: dict = {}
    reports_ = ActionReport.objects.filter(tracked_at__gte=start, tracked_at__lt=end)
    for r in reports_.filter(brand=brand) if brand else reports_:
        locked = not r.reversed and r.locking_date is not None and r.locking_date <= now
        p = r.payout or Decimal(0)
        n0, p0, ln0, lp0 = sums.get((r.currency, r.group), (0, Decimal(0), 0, Decimal(0)))
        sums[(r.currency, r.group)] = (n0 + 1, p0 + p, ln0 + locked, lp0 + (p if locked else 0))
    return sums


def performance_from_reports(start, end, by) -> Counter:
    rows: dict = {}
    for r in ActionReport.objects.filter(tracked_at__gte=start, tracked_at__lt=end):
        key = (getattr(r, by), r.currency)
        sums = rows.get(key, (0, 0, Decimal(0), Decimal(0), Decimal(0)))
        rows[key] = tuple(a + b for a, b in zip(sums, (1, int(r.reversed), r.gained, r.changed, r.lost)))
    return rows


def assert_cards(cards: list[dict], expected: dict) -> None:
    """The cards say what the reports' sums say, currency by currency."""
    for card in cards:
        c = card["currency"]
        assert card["actions"] == sum(v[0] for (cur, _), v in expected.items() if cur == c), c
        locked = [v for (cur, g), v in expected.items() if cur == c and g != "reversed"]
        assert card["locked"] == {"actions": sum(v[2] for v in locked), "payout": sum(v[3] for v in locked)}
        reversed_ = expected.get((c, "reversed"), (0, Decimal(0)))
        assert card["reversed"] == {"actions": reversed_[0], "payout": reversed_[1]}
        not_approved = [v for (cur, g), v in expected.items() if cur == c and g in ("pending", "other")]
        assert card["overdue"]["actions"] == sum(v[2] for v in not_approved)
    assert {card["currency"] for card in cards} == {c for c, _ in expected}


PERIODS = [("24h", None, None), ("7d", None, None), ("30d", None, None), ("custom", "2026-10-20", "2026-11-03")]


@pytest.mark.parametrize("seed", [4, 5])
def test_money_by_status_and_performance_of_a_period_equal_the_reports_tracked_in_it(random_history, seed):
    random_history(seed)
    now = NOW + timedelta(minutes=1)
    assert_cards(queries.status_now(now), status_from_reports(NOW - timedelta(days=99), now, now))
    for key, first, last in PERIODS:
        period = parse_period(key, first, last, now=now, tz=ZoneInfo(ZONE))
        expected = status_from_reports(period.start, period.end, now)
        now_cards, cards = queries.money_by_status(now, period.start, period.end)
        assert_cards(cards, expected)
        assert cards == queries.status_for_period(period.start, period.end, now)
        assert now_cards == queries.status_now(now)
        brand = Brand.objects.get(campaign_id="1001")
        now_cards, cards = queries.money_by_status(now, period.start, period.end, brand)
        assert_cards(cards, status_from_reports(period.start, period.end, now, brand))
        assert_cards(now_cards, status_from_reports(NOW - timedelta(days=99), now, now, brand))
        for by in reports.DIMENSION_FIELDS:
            rows = queries.performance(period.start, period.end, by, "-tracked")
            got = {(r["value"], r["currency"]): (r["tracked"], r["reversed"], r["gained"], r["changed"], r["lost"])
                   for r in rows}  # fmt: skip
            assert got == performance_from_reports(period.start, period.end, by), (key, by)
            assert [r["currency"] for r in rows] == sorted(r["currency"] for r in rows)


def test_performance_orders_within_each_currency_like_the_page_asks(random_history):
    random_history(6)
    start, end = NOW - timedelta(days=40), NOW + timedelta(minutes=1)
    for sort in queries.PERFORMANCE_SORTS:
        for descending in (False, True):
            rows = queries.performance(start, end, "sub_id1", f"-{sort}" if descending else sort)
            for currency in {r["currency"] for r in rows}:
                mine = [r for r in rows if r["currency"] == currency]
                keys = [(r[sort], r["value"]) for r in mine]
                if sort == "value":
                    assert keys == sorted(keys, reverse=descending)
                else:
                    assert [k[0] for k in keys] == sorted((k[0] for k in keys), reverse=descending)
