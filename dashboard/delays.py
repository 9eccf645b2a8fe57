"""Postback delays, pure Python: human durations and how late a delay is."""

from __future__ import annotations

ON_TIME, LATE, ALERT, UNKNOWN = "on-time", "late", "alert", "unknown"


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


def delay_level(seconds: int | None, late_after_minutes: int, alert_after_minutes: int) -> str:
    if seconds is None:
        return UNKNOWN
    if seconds > alert_after_minutes * 60:
        return ALERT
    if seconds > late_after_minutes * 60:
        return LATE
    return ON_TIME
