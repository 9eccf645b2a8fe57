"""The pure helpers behind the pages: money, delays, periods, cursors, charts, CSV cells."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from dashboard import charts, folding, money, periods
from dashboard.exports import safe_cell
from dashboard.paging import BadCursor, Cursor, paginate
from events.common.times import format_duration
from events.impact import promises

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def test_money_shows_symbol_grouping_and_a_real_minus():
    assert money.format_money(Decimal("1234.5"), "usd") == "$1,234.50"
    assert money.format_money(Decimal("-3"), "EUR") == "\u2212€3.00"
    assert money.format_money(Decimal("2.5"), "SEK", signed=True) == "+2.50 SEK"
    assert money.format_money(Decimal("1500.4"), "JPY") == "¥1,500"
    assert money.format_money(None, "USD") == ""


def test_csv_amounts_are_plain_numbers():
    assert money.plain_amount(Decimal("-10.000000"), "USD") == "-10.00"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "—"), (45, "45 s"), (252, "4 min 12 s"), (600, "10 min"), (7500, "2 h 05 min"), (97200, "1 d 3 h")],
)
def test_durations_read_like_a_person_would_say_them(seconds, text):
    assert format_duration(seconds) == text


def test_delay_levels_follow_the_thresholds(settings):
    settings.DELAY_LATE_AFTER_MINUTES, settings.DELAY_ALERT_AFTER_MINUTES = 15, 60
    assert promises.delay_level(900) == promises.ON_TIME
    assert promises.delay_level(901) == promises.LATE
    assert promises.delay_level(3601) == promises.ALERT
    assert promises.delay_level(None) == promises.UNKNOWN


def test_preset_periods_are_whole_hours_or_days_up_to_now():
    now = NOW + timedelta(minutes=30, seconds=7)
    period = periods.parse_period("24h", None, None, now=now, tz=UTC)
    assert (period.start, period.end, period.bucket) == (NOW - timedelta(hours=23), now, "hour")
    assert len(period.buckets(UTC)) == 24  # 23 whole hours and the current one: no sliver of a 25th
    week = periods.parse_period(None, None, None, now=now, tz=UTC)
    assert (week.key, week.start, week.end) == ("7d", datetime(2026, 11, 15, tzinfo=UTC), now)
    assert [b.date() for b in week.buckets(UTC)] == [date(2026, 11, d) for d in range(15, 22)]
    assert (week.span, week.label) == ("2026-11-15 – 2026-11-21", "Last 7 days")


def test_a_preset_period_starts_at_midnight_of_the_display_zone():
    paris = ZoneInfo("Europe/Paris")
    month = periods.parse_period("30d", None, None, now=NOW, tz=paris)
    assert month.start == datetime(2026, 10, 22, 22, 0, tzinfo=UTC)  # Oct 23, 00:00 in Paris (summer time)
    assert len(month.buckets(paris)) == 30


def test_a_custom_period_is_named_by_its_first_and_last_day_both_included():
    period = periods.parse_period("custom", "2026-11-10", "2026-11-16", now=NOW, tz=UTC)
    assert period.end == datetime(2026, 11, 17, tzinfo=UTC)  # exclusive, never shown
    assert period.span == "2026-11-10 – 2026-11-16"


def test_custom_period_covers_whole_days_in_the_display_zone():
    paris = ZoneInfo("Europe/Paris")
    period = periods.parse_period("custom", "2026-11-01", "2026-11-02", now=NOW, tz=paris)
    assert period.start == datetime(2026, 10, 31, 23, 0, tzinfo=UTC)
    assert period.end == datetime(2026, 11, 2, 23, 0, tzinfo=UTC)
    assert [b.date() for b in period.buckets(paris, "day")] == [date(2026, 11, 1), date(2026, 11, 2)]


def test_daily_buckets_survive_a_daylight_saving_change():
    paris = ZoneInfo("Europe/Paris")
    period = periods.parse_period("custom", "2026-10-24", "2026-10-26", now=NOW, tz=paris)
    assert [b.hour for b in period.buckets(paris, "day")] == [0, 0, 0]


@pytest.mark.parametrize(
    ("key", "start", "end"),
    [("1y", None, None), ("custom", "2026-11-02", "2026-11-01"), ("custom", "nope", "2026-11-01"),
     ("custom", "2024-01-01", "2026-01-01")],
)  # fmt: skip
def test_bad_periods_are_refused_with_a_reason(key, start, end):
    with pytest.raises(periods.BadPeriod):
        periods.parse_period(key, start, end, now=NOW, tz=UTC)


def test_cursor_round_trips_and_rejects_tampering():
    cursor = Cursor(NOW, 42)
    assert Cursor.decode(cursor.encode()) == cursor
    for token in ["", "garbage", "bm90LWEtZGF0ZXwx", Cursor(NOW, 1).encode()[:-3]]:
        with pytest.raises(BadCursor):
            Cursor.decode(token)


def test_paginate_walks_older_then_back_newer():
    rows = [(NOW - timedelta(minutes=i), 100 - i) for i in range(7)]  # newest first

    def key(row):
        return Cursor(*row)

    def older(cursor, limit):
        return [r for r in rows if cursor is None or (r[0], r[1]) < (cursor.at, cursor.pk)][:limit]

    def newer(cursor, limit):
        return sorted(r for r in rows if (r[0], r[1]) > (cursor.at, cursor.pk))[:limit]

    first = paginate(older, newer, before=None, after=None, size=3, key=key)
    assert first.rows == rows[:3] and first.newer is None
    second = paginate(older, newer, before=first.older, after=None, size=3, key=key)
    assert second.rows == rows[3:6]
    last = paginate(older, newer, before=second.older, after=None, size=3, key=key)
    assert last.rows == rows[6:] and last.older is None
    back = paginate(older, newer, before=None, after=second.newer, size=3, key=key)
    assert back.rows == rows[:3] and back.newer is None


def test_nice_steps_are_round_numbers():
    assert charts.nice_step(100) == 25
    assert charts.nice_step(7) == 2
    assert charts.nice_step(0.9) == 0.25
    assert charts.compact_number(1500) == "1.5k"
    assert charts.compact_number(-2_000_000) == "−2M"


def test_stacked_bars_stack_in_order_and_fit_the_plot():
    chart = charts.stacked_bars(
        ["a", "b"], [("tracked", "t"), ("reversed", "r")], [{"tracked": 3, "reversed": 1}, {"tracked": 0}]
    )
    assert [b.css for b in chart.bars] == ["t", "r"]
    tracked, reversed_ = chart.bars
    assert tracked.y + tracked.height == pytest.approx(chart.zero_y)
    assert reversed_.y + reversed_.height == pytest.approx(tracked.y)
    assert tracked.height == pytest.approx(3 * reversed_.height)
    assert min(t.y for t in chart.ticks) >= charts.TOP - 0.01
    assert not chart.empty


def test_signed_bars_go_up_for_gains_and_down_for_losses():
    chart = charts.signed_bars(["a", "b", "c"], [Decimal("10"), None, Decimal("-5")])
    gain, loss = chart.bars
    assert (gain.css, loss.css) == ("gain", "loss")
    assert gain.y + gain.height == pytest.approx(chart.zero_y)
    assert loss.y == pytest.approx(chart.zero_y)
    assert gain.height == pytest.approx(2 * loss.height, abs=0.02)


def test_an_empty_chart_says_so():
    assert charts.stacked_bars(["a"], [("tracked", "t")], [{}]).empty
    assert charts.signed_bars(["a"], [None]).empty


def test_csv_cells_cannot_become_formulas_but_numbers_stay_numbers():
    assert safe_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert safe_cell("@SUM") == "'@SUM"
    assert safe_cell("-10.00") == "-10.00"
    assert safe_cell(None) == ""


def test_grouped_rows_fold_into_totals_money_and_chart_buckets():
    day1, day2 = datetime(2026, 11, 19, tzinfo=UTC), datetime(2026, 11, 20, tzinfo=UTC)
    rows = [
        {"bucket": day1, "currency": "USD", "events": 3, "tracked": 2, "reversed": 1,
         "gained": Decimal("20"), "changed": Decimal("0"), "lost": Decimal("-5")},
        {"bucket": day1, "currency": "EUR", "events": 1, "tracked": 1, "gained": Decimal("9")},
        {"bucket": day2, "currency": "USD", "events": 2, "modified": 2, "changed": Decimal("3")},
    ]  # fmt: skip
    total = folding.summary(rows)
    assert (total["events"], total["tracked"], total["modified"], total["reversed"]) == (6, 3, 2, 1)
    assert folding.main_currency(rows) == "USD"
    usd, eur = folding.money_by_currency(rows)
    assert (usd["currency"], usd["gained"], usd["changed"], usd["lost"], usd["net"]) == (
        "USD", Decimal("20"), Decimal("3"), Decimal("-5"), Decimal("18")
    )  # fmt: skip
    assert (eur["currency"], eur["net"]) == ("EUR", Decimal("9"))
    first, second = folding.per_bucket(rows, "USD")
    assert (first["tracked"], first["gained"], second["modified"], second["changed"]) == (
        3,
        Decimal("20"),
        2,
        Decimal("3"),
    )
    assert folding.summary([])["events"] == 0 and folding.main_currency([]) is None
