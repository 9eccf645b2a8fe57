"""The overview's and brands list's closed days come from a rollup, and equal a count over every event, exactly."""

from __future__ import annotations

import io
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.core.management import call_command
from django.db import connection
from django.db.models import Aggregate, FloatField
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events import processing
from events.alerts import watcher
from events.common import times
from events.models import COUNTS, MONEY, Action, ActionEvent, Brand, Delivery, OverviewRollup
from events.reporting import rollups
from events.simulation import synthetic

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
ZONES = ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Pacific/Chatham", "America/Santiago"]
KINDS = ["tracked", "modified", "reversed"]
OUTCOMES = ["applied", "duplicate", "invalid", "failed", "received"]


# --- Builders ----------------------------------------------------------------------------------


def brand_and_action(brand: int = 0) -> Action:
    brand, _ = Brand.objects.get_or_create(campaign_id=str(1001 + brand))
    action, _ = Action.objects.get_or_create(
        action_id=f"A{brand.campaign_id}",
        defaults={"brand": brand, "state": "tracked", "first_received_at": NOW, "last_received_at": NOW},
    )
    return action


def add_events(specs: list[dict]) -> None:
    """One event per spec (received_at, kind, currency, payout, delta_payout, applied, delay_seconds, brand)."""
    actions = {}
    first = ActionEvent.objects.count() + 1
    events = []
    for i, spec in enumerate(specs):
        fields = dict(spec)
        brand = fields.pop("brand", 0)
        action = actions[brand] = actions.get(brand) or brand_and_action(brand)
        events.append(
            ActionEvent(
                action=action,
                brand_id=action.brand_id,
                seq=first + i,
                fingerprint=f"fp-{first + i}",
                to_state=fields["kind"],
                **fields,
            )
        )
    ActionEvent.objects.bulk_create(events)


def add_deliveries(specs: list[tuple[datetime, str]]) -> None:
    Delivery.objects.bulk_create(
        Delivery(received_at=received_at, method="GET", path="/postbacks/impact/", outcome=outcome)
        for received_at, outcome in specs
    )


def event(received_at: datetime, **fields) -> dict:
    spec = {"received_at": received_at, "kind": "tracked", "currency": "USD", "payout": Decimal("10.00")}
    spec.update(delay_seconds=60, applied=True, delta_payout=None)
    spec.update(fields)
    return spec


# --- What a count over every event gives (the overview's query before rollups) -------------------


class PercentileCont(Aggregate):
    """PostgreSQL's percentile_cont: what the overview and brands list computed before rollups."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression, fraction: float):
        super().__init__(expression, fraction=repr(fraction))


def percentiles_of(events, fraction: float, by: str = "") -> dict:
    """{group: percentile_cont of its delays} ({"": ...} without `by`), groups with a delay only."""
    events = events.exclude(delay_seconds=None).order_by()
    if connection.vendor == "postgresql":
        if not by:
            row = events.aggregate(p=PercentileCont("delay_seconds", fraction))
            return {"": row["p"]} if row["p"] is not None else {}
        return dict(events.values_list(by).annotate(p=PercentileCont("delay_seconds", fraction)))
    groups: dict = {}
    for event in events.only("delay_seconds", "brand_id"):
        groups.setdefault(getattr(event, by) if by else "", []).append(event.delay_seconds)
    return {group: cont(sorted(values), fraction) for group, values in groups.items()}


def cont(values: list[int], fraction: float) -> float:
    """percentile_cont as PostgreSQL's documentation defines it."""
    position = fraction * (len(values) - 1)
    low, high = values[math.floor(position)], values[math.ceil(position)]
    return low + (position - math.floor(position)) * (high - low)


def everything_counted(start, end, bucket, tz) -> dict:
    events = ActionEvent.objects.in_period(start, end)
    rows = events.period_rows(bucket, tz)
    delays = list(events.exclude(delay_seconds=None).values_list("delay_seconds", flat=True))
    return {
        "rows": [(row["bucket"], row["currency"], *(row[k] for k in COUNTS + MONEY)) for row in rows],
        "with_delay": len(delays),
        "late": sum(d > 15 * 60 for d in delays),
        "alert_late": sum(d > 60 * 60 for d in delays),
        "delay_max": max(delays, default=None),
        "delay_p50": percentiles_of(events, 0.5).get(""),
        "delay_p95": percentiles_of(events, 0.95).get(""),
        "deliveries": Delivery.objects.in_period(start, end).outcome_counts(),
        "brands": per_brand(events.brand_rows()),
        "brand_p95": percentiles_of(events, 0.95, by="brand_id"),
    }


def per_brand(rows: list[dict]) -> dict:
    """{(brand, currency): (counts..., money...)}, the closed days' and the rest's rows added up."""
    totals: dict = {}
    for row in rows:
        values = [row[k] for k in COUNTS + MONEY]
        key = (row["brand_id"], row["currency"])
        totals[key] = [a + b for a, b in zip(totals[key], values, strict=True)] if key in totals else values
    return totals


def from_rollups(start, end, bucket, tz, now) -> dict:
    figures = rollups.figures(start, end, bucket, tz, now)
    brands = rollups.brand_figures(start, end, tz, now)
    return {
        "rows": [(row["bucket"], row["currency"], *(row[k] for k in COUNTS + MONEY)) for row in figures.rows],
        **figures.delay_summary(),
        "deliveries": dict(figures.deliveries),
        "brands": per_brand(brands.rows),
        "brand_p95": brands.percentiles(0.95),
    }


# --- Property: rollup + live part == everything counted, before and after late writes ----------

moments = st.integers(min_value=-9 * 24 * 3600, max_value=0).map(lambda s: NOW + timedelta(seconds=s))
midnights = st.integers(min_value=-9, max_value=0).map(lambda d: NOW.replace(hour=0) + timedelta(days=d))
event_specs = st.builds(
    event,
    st.one_of(moments, midnights),
    kind=st.sampled_from(KINDS),
    currency=st.sampled_from(["USD", "EUR", ""]),
    payout=st.one_of(st.none(), st.decimals(min_value=-(10**5), max_value=10**5, places=2)),
    delta_payout=st.one_of(st.none(), st.decimals(min_value=-(10**4), max_value=10**4, places=6)),
    applied=st.booleans(),
    delay_seconds=st.one_of(st.none(), st.integers(-3600, 3 * 3600), st.sampled_from([0, 900, 901, 3600, 3601])),
    brand=st.integers(0, 2),
)
delivery_specs = st.tuples(st.one_of(moments, midnights), st.sampled_from(OUTCOMES))
periods = st.one_of(
    st.sampled_from(["24h", "7d", "30d"]).map(lambda key: {"24h": 1, "7d": 7, "30d": 30}[key]),
    st.tuples(st.integers(-10, 0), st.integers(0, 10)),
)


def period_bounds(period, now, tz):
    """A preset (days back from now) or custom whole days (first, length) in tz, like the pages."""
    if isinstance(period, int):
        return now - timedelta(days=period), now, "hour" if period == 1 else "day"
    first, length = period
    start = times.day_start(times.local_day(now, tz) + timedelta(days=first), tz)
    end = times.day_start(times.local_day(start, tz) + timedelta(days=length + 1), tz)
    return start, end, "hour" if length + 1 <= 2 else "day"


@given(
    zone=st.sampled_from(ZONES),
    period=periods,
    minutes_after=st.integers(0, 3 * 24 * 60),
    before=st.lists(event_specs, max_size=25),
    late=st.lists(event_specs, max_size=8),
    deliveries=st.lists(delivery_specs, max_size=10),
    late_deliveries=st.lists(delivery_specs, max_size=4),
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_rollups_and_live_part_equal_a_count_over_every_event(
    db, zone, period, minutes_after, before, late, deliveries, late_deliveries
):
    for model in (OverviewRollup, ActionEvent, Action, Delivery):
        model.objects.all().delete()
    tz = ZoneInfo(zone)
    now = NOW + timedelta(minutes=minutes_after)
    start, end, bucket = period_bounds(period, now, tz)
    add_events(before)
    add_deliveries(deliveries)
    assert_same(from_rollups(start, end, bucket, tz, now), everything_counted(start, end, bucket, tz))

    # Replays and backfills land in days already counted; each write says so.
    add_events(late)
    add_deliveries(late_deliveries)
    for received_at in [spec["received_at"] for spec in late] + [at for at, _ in late_deliveries]:
        rollups.changed(received_at, now=now)
    assert_same(from_rollups(start, end, bucket, tz, now), everything_counted(start, end, bucket, tz))


def assert_same(got: dict, expected: dict) -> None:
    for name, value in expected.items():
        assert (name, got[name]) == (name, value)


# --- Caching and invalidation ----------------------------------------------------------------------

LAST_WEEK = (NOW - timedelta(days=7), NOW, "day", ZoneInfo("UTC"))
THREE_DAYS_AGO = NOW - timedelta(days=3)


def tracked(figures) -> int:
    return sum(row["tracked"] for row in figures.rows)


def test_closed_days_are_counted_once_then_read_from_their_rollup(db, django_assert_max_num_queries):
    add_events([event(THREE_DAYS_AGO), event(NOW - timedelta(minutes=5))])
    assert tracked(rollups.figures(*LAST_WEEK, now=NOW)) == 2
    (rollup,) = OverviewRollup.objects.all()
    assert (rollup.zone, rollup.first_day.isoformat(), rollup.last_day.isoformat()) == (
        "UTC",
        "2026-11-15",
        "2026-11-20",
    )
    # Read back: the rollup, then events (rows, delays) and deliveries of today and the first partial day.
    with django_assert_max_num_queries(4):
        assert tracked(rollups.figures(*LAST_WEEK, now=NOW)) == 2


def test_a_write_into_a_counted_day_shows_once_it_says_so(db):
    rollups.figures(*LAST_WEEK, now=NOW)
    add_events([event(THREE_DAYS_AGO)])  # a replay of a delivery received three days ago
    assert tracked(rollups.figures(*LAST_WEEK, now=NOW)) == 0  # the rollup does not know yet
    rollups.changed(THREE_DAYS_AGO, now=NOW)
    assert tracked(rollups.figures(*LAST_WEEK, now=NOW)) == 1


def test_an_ordinary_postback_costs_no_query(db, django_assert_num_queries):
    rollups.figures(*LAST_WEEK, now=NOW)
    with django_assert_num_queries(0):
        rollups.changed(NOW - rollups.LATE_WRITE + timedelta(seconds=1), now=NOW)
    assert OverviewRollup.objects.count() == 1


def test_a_day_is_closed_an_hour_after_it_ended(db):
    add_events([event(NOW.replace(hour=0) - timedelta(minutes=1))])  # late yesterday evening
    just_after_midnight = NOW.replace(hour=0, minute=59)
    rollups.figures(*LAST_WEEK[:2], "day", ZoneInfo("UTC"), now=just_after_midnight)
    (rollup,) = OverviewRollup.objects.all()
    assert rollup.last_day.isoformat() == "2026-11-19"  # yesterday still counted live
    add_events([event(NOW.replace(hour=0) - timedelta(minutes=2))])  # written in time: no changed() needed
    figures = rollups.figures(*LAST_WEEK[:2], "day", ZoneInfo("UTC"), now=NOW.replace(hour=1))
    assert tracked(figures) == 2


def test_forget_drops_the_rollups_that_overlap_a_range(db):
    tz = ZoneInfo("UTC")
    rollups.figures(NOW - timedelta(days=30), NOW, "day", tz, now=NOW)
    rollups.figures(NOW - timedelta(days=3), NOW, "day", tz, now=NOW)
    assert rollups.forget(NOW - timedelta(days=10), NOW - timedelta(days=9)) == 1  # the 30-day one only
    assert rollups.forget(NOW - timedelta(days=40), NOW - timedelta(days=31)) == 0
    assert rollups.forget() == 1


def test_each_display_zone_has_its_own_days(db):
    add_events([event(datetime(2026, 11, 18, 23, 30, tzinfo=UTC))])  # Nov 18 in UTC, Nov 19 in Paris
    paris, utc = ZoneInfo("Europe/Paris"), ZoneInfo("UTC")
    by_day = {}
    for tz in (utc, paris):
        rows = rollups.figures(NOW - timedelta(days=7), NOW, "day", tz, now=NOW).rows
        by_day[str(tz)] = [times.local_day(row["bucket"], tz).isoformat() for row in rows]
    assert by_day == {"UTC": ["2026-11-18"], "Europe/Paris": ["2026-11-19"]}
    assert sorted(OverviewRollup.objects.values_list("zone", flat=True)) == ["Europe/Paris", "UTC"]


def test_rollups_of_periods_seen_days_ago_are_cleaned_up(db, time_machine):
    tz = ZoneInfo("UTC")
    for days_later in (0, 1, 3):
        time_machine.move_to(NOW + timedelta(days=days_later), tick=False)
        rollups.figures(NOW - timedelta(days=7), NOW + timedelta(days=days_later), "day", tz)
    assert sorted(r.last_day.isoformat() for r in OverviewRollup.objects.all()) == ["2026-11-21", "2026-11-23"]


def test_hourly_charts_read_no_rollup(db):
    add_events([event(NOW - timedelta(hours=5))])
    figures = rollups.figures(NOW - timedelta(hours=24), NOW, "hour", ZoneInfo("UTC"), now=NOW)
    assert tracked(figures) == 1 and not OverviewRollup.objects.exists()


def test_a_replayed_delivery_from_last_week_shows_in_an_overview_already_counted(staff_client, time_machine):
    from urllib.parse import urlencode

    from tests.conftest import postback_params

    received = NOW - timedelta(days=3)
    params = postback_params(CreationDate=(received - timedelta(minutes=2)).isoformat())
    Delivery.objects.create(
        received_at=received, method="GET", path="/postbacks/impact/", query_string=urlencode(params)
    )
    time_machine.move_to(NOW, tick=False)
    before = staff_client.get("/?period=7d").context
    assert (before["summary"]["tracked"], before["deliveries"].get("received")) == (0, 1)
    processing.replay(Delivery.objects.replayable())  # e.g. after a database outage left it unprocessed
    after = staff_client.get("/?period=7d").context
    assert (after["summary"]["tracked"], after["deliveries"].get("applied"), after["deliveries"].get("received")) == (
        1,
        1,
        None,
    )


# --- Writers that move or delete rows in days already counted ------------------------------------


def counted_deliveries(start, end) -> int:
    return sum(rollups.figures(start, end, "day", ZoneInfo("UTC"), now=NOW).deliveries.values())


def test_prune_deleting_old_deliveries_drops_the_rollups_that_counted_them(db, time_machine):
    time_machine.move_to(NOW, tick=False)
    old = NOW - timedelta(days=100)
    add_deliveries([(old, "applied"), (old, "invalid")])
    span = (old - timedelta(days=2), old + timedelta(days=2))
    assert counted_deliveries(*span) == 2
    recent = counted_deliveries(NOW - timedelta(days=7), NOW)
    call_command("prune", "--deliveries-older-than", "90d", "--delete-rows", stdout=io.StringIO())
    assert counted_deliveries(*span) == 0
    assert OverviewRollup.objects.filter(last_day__gte=NOW.date() - timedelta(days=7)).count() == 1  # kept
    assert counted_deliveries(NOW - timedelta(days=7), NOW) == recent


def test_deleting_an_action_in_admin_drops_the_rollups(admin_client):
    add_events([event(THREE_DAYS_AGO)])
    assert tracked(rollups.figures(*LAST_WEEK, now=NOW)) == 1
    action = Action.objects.get()
    response = admin_client.post(f"/admin/events/action/{action.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert tracked(rollups.figures(*LAST_WEEK, now=NOW)) == 0


def test_removing_the_synthetic_test_action_drops_the_rollups(db):
    brand = Brand.objects.create(campaign_id=synthetic.TEST_CAMPAIGN_ID)
    action = Action.objects.create(
        action_id=f"{synthetic.TEST_PREFIX}1", brand=brand, state="tracked", first_received_at=NOW, last_received_at=NOW
    )
    ActionEvent.objects.create(
        action=action, brand=brand, seq=1, fingerprint="t1", to_state="tracked", **event(THREE_DAYS_AGO)
    )
    start, end, _, zone = LAST_WEEK
    # In no overview total; the brands list (asked to show it) counts it, from a stored rollup too.
    assert tracked(rollups.figures(*LAST_WEEK, now=NOW)) == 0
    assert tracked(rollups.brand_figures(start, end, zone, now=NOW)) == 1
    synthetic.remove_test_action(action.action_id)
    assert tracked(rollups.brand_figures(start, end, zone, now=NOW)) == 0


# --- Counting ahead (the delay watcher) ----------------------------------------------------------


def test_the_watcher_counts_the_dashboard_rollups_before_the_first_view_of_the_day(staff_client, time_machine):
    add_events([event(NOW - timedelta(days=d, hours=3)) for d in range(1, 40)])
    time_machine.move_to(NOW, tick=False)
    assert rollups.warm() == 2  # the 7- and 30-day periods
    assert rollups.warm() == 0
    stored = set(OverviewRollup.objects.values_list("first_day", "last_day"))
    for page in ("/?period=7d", "/?period=30d", "/brands/?period=7d", "/brands/?period=30d"):
        assert staff_client.get(page).status_code == 200
    assert set(OverviewRollup.objects.values_list("first_day", "last_day")) == stored  # read, not counted again
    assert staff_client.get("/?period=30d").context["summary"]["tracked"] == 29  # days 1 to 29 back


def test_a_watcher_pass_counts_ahead_and_says_so(db, time_machine):

    time_machine.move_to(NOW, tick=False)
    summary = watcher.Watcher(log=lambda text: None).run_pass()
    assert summary["rollups counted"] == 2
    assert watcher.Watcher(log=lambda text: None).run_pass()["rollups counted"] == 0
