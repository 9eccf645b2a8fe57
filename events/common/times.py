"""Times and durations as every page, alert and message shows them, and the days of a time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo

# The days a page may ask for: far beyond any real data, yet every day's start and end exists in
# every time zone (datetime stops at the year 9999); and at most MAX_RANGE_DAYS days at a time, so
# no request can make a page count, chart or look up more days than that.
FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(9998, 12, 31)
MAX_RANGE_DAYS = 366


def format_duration(seconds: float | int | None) -> str:
    """`45 s`, `4 min 12 s`, `2 h 05 min`, `3 d 4 h`; negative (clock skew) keeps its sign."""
    if seconds is None:
        return "—"
    seconds = round(seconds)
    sign = "\u2212" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds < 60:
        return f"{sign}{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{sign}{minutes} min {secs:02d} s" if secs else f"{sign}{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{sign}{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{sign}{days} d {hours} h"


def format_moment(moment: datetime | None) -> str:
    """A moment in UTC, to the second, for alert notes and notifications."""
    return "—" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def day_start(day: date, tz: tzinfo) -> datetime:
    """The first instant of `day` in `tz`."""
    return datetime.combine(day, time(), tzinfo=tz)


def local_day(moment: datetime, tz: tzinfo) -> date:
    return moment.astimezone(tz).date()


def day_range_problem(first: date | None, last: date | None) -> str | None:
    """What is wrong with the days `first`..`last` (inclusive, either may be open), or None."""
    for day in (first, last):
        if day is not None and not FIRST_DAY <= day <= LAST_DAY:
            return f"dates run from {FIRST_DAY:%Y-%m-%d} to {LAST_DAY:%Y-%m-%d}"
    if first is not None and last is not None:
        if last < first:
            return "the end date is before the start date"
        if (last - first).days >= MAX_RANGE_DAYS:
            return f"a date range covers at most {MAX_RANGE_DAYS} days"
    return None


def days_back(now: datetime, days: int, tz: tzinfo) -> datetime:
    """The first instant of the last `days` whole days of `tz` up to `now`, today included: the start of
    "the last 7 days" (so a period never begins with a sliver of a day)."""
    return day_start(local_day(now, tz) - timedelta(days=days - 1), tz)


def hours_back(now: datetime, hours: int) -> datetime:
    """The first instant of the last `hours` whole hours up to `now`, the current one included."""
    return now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
