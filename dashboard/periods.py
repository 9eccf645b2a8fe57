"""Time windows for the overview and brands pages, pure Python (no Django).

Every period is made of whole days (whole hours for the last 24 hours) of the display zone, the
current one included up to now: a chart never starts with a sliver of a day, and a period is named
by its first and last day, both included, in ISO form like every date the pages show.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from events.common.times import day_range_problem, day_start, days_back, hours_back, local_day

PRESETS = {"24h": 24, "7d": 7, "30d": 30}  # hours for 24h, days for the others
DEFAULT = "7d"
LABELS = {"24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days"}


class BadPeriod(ValueError):
    pass


@dataclass(frozen=True)
class Period:
    key: str  # "24h", "7d", "30d" or "custom"
    start: datetime
    end: datetime  # exclusive: now for a preset, the first instant after the last day for a custom period
    label: str
    first_day: date | None = None  # the days it covers, both included, in the display zone
    last_day: date | None = None

    @property
    def bucket(self) -> str:
        """Chart buckets: hours for two days or less, days beyond."""
        return "hour" if self.end - self.start <= timedelta(days=2) else "day"

    @property
    def span(self) -> str:
        """Its days, both included (`2026-11-15 – 2026-11-21`), or its first hour for the last 24 hours."""
        if self.key == "24h":
            return f"since {self.start:%Y-%m-%d %H:%M}"
        if self.first_day == self.last_day:
            return f"{self.first_day:%Y-%m-%d}"
        return f"{self.first_day:%Y-%m-%d} – {self.last_day:%Y-%m-%d}"

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
    """A preset (`24h`: the last 24 whole hours; `7d`, `30d`: the last 7 or 30 whole days, today
    included) ending now, or `custom` whole days `start`..`end` (inclusive) in `tz`."""
    key = key or DEFAULT
    if key == "24h":
        first = hours_back(now.astimezone(tz), PRESETS[key])
        return Period(key, first, now, LABELS[key], local_day(first, tz), local_day(now, tz))
    if key in PRESETS:
        first = days_back(now, PRESETS[key], tz)
        return Period(key, first, now, LABELS[key], local_day(first, tz), local_day(now, tz))
    if key != "custom":
        raise BadPeriod(f"unknown period {key!r}: choose 24h, 7d, 30d or custom")
    try:
        first_day = date.fromisoformat(start or "")
        last_day = date.fromisoformat(end or "")
    except ValueError as exc:
        raise BadPeriod("a custom period needs a start and an end date (YYYY-MM-DD)") from exc
    problem = day_range_problem(first_day, last_day)
    if problem:
        raise BadPeriod(problem)
    label = "Custom period"
    start_at, end_at = day_start(first_day, tz), day_start(last_day + timedelta(days=1), tz)
    return Period("custom", start_at, end_at, label, first_day, last_day)
