"""Times and durations as every page, alert and message shows them, and the days of a time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo


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


def days_back(now: datetime, days: int, tz: tzinfo) -> datetime:
    """The first instant of the last `days` whole days of `tz` up to `now`, today included: the start of
    "the last 7 days" (so a period never begins with a sliver of a day)."""
    return day_start(local_day(now, tz) - timedelta(days=days - 1), tz)


def hours_back(now: datetime, hours: int) -> datetime:
    """The first instant of the last `hours` whole hours up to `now`, the current one included."""
    return now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
