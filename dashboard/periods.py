"""Time windows for the overview and brands pages, pure Python (no Django)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from events.common.times import day_range_problem, day_start

PRESETS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
DEFAULT = "7d"


class BadPeriod(ValueError):
    pass


@dataclass(frozen=True)
class Period:
    key: str  # "24h", "7d", "30d" or "custom"
    start: datetime
    end: datetime
    label: str

    @property
    def bucket(self) -> str:
        """Chart buckets: hours for two days or less, days beyond."""
        return "hour" if self.end - self.start <= timedelta(days=2) else "day"

    def buckets(self, tz: tzinfo, bucket: str | None = None) -> list[datetime]:
        """Every bucket start in the period, in `tz`, so empty days still show."""
        bucket = bucket or self.bucket
        step = timedelta(hours=1) if bucket == "hour" else timedelta(days=1)
        local = self.start.astimezone(tz)
        if bucket == "hour":
            current = local.replace(minute=0, second=0, microsecond=0)
        else:
            current = datetime.combine(local.date(), time(), tzinfo=tz)
        result = []
        while current < self.end:
            result.append(current)
            current = _advance(current, step, tz)
        return result


def _advance(moment: datetime, step: timedelta, tz: tzinfo) -> datetime:
    if step >= timedelta(days=1):  # calendar days, whatever daylight saving does
        return datetime.combine(moment.date() + timedelta(days=1), time(), tzinfo=tz)
    return (moment.astimezone(tz) + step).astimezone(tz)


def parse_period(key: str | None, start: str | None, end: str | None, *, now: datetime, tz: tzinfo) -> Period:
    """A preset (`24h`, `7d`, `30d`) ending now, or `custom` whole days `start`..`end` (inclusive) in `tz`."""
    key = key or DEFAULT
    if key in PRESETS:
        labels = {"24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days"}
        return Period(key, now - PRESETS[key], now, labels[key])
    if key != "custom":
        raise BadPeriod(f"unknown period {key!r}: choose 24h, 7d, 30d or custom")
    try:
        first = date.fromisoformat(start or "")
        last = date.fromisoformat(end or "")
    except ValueError as exc:
        raise BadPeriod("a custom period needs a start and an end date (YYYY-MM-DD)") from exc
    problem = day_range_problem(first, last)
    if problem:
        raise BadPeriod(problem)
    label = f"{first:%b %d, %Y} – {last:%b %d, %Y}" if first != last else f"{first:%b %d, %Y}"
    return Period("custom", day_start(first, tz), day_start(last + timedelta(days=1), tz), label)
