"""impact.com's delivery promises, and the one rule that says how late a postback is.

impact.com promises a postback within 15 minutes of a change, and asks publishers to contact
support when a change has produced no postback after an hour. DELAY_LATE_AFTER_MINUTES and
DELAY_ALERT_AFTER_MINUTES default to those two promises; models, indexes, rollups, alerts and
pages all ask here rather than reading the settings themselves.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings

# The promise itself. The partial index of late postbacks (`event_brand_late_recv`) is built for
# it, so it serves any DELAY_LATE_AFTER_MINUTES of at least 15; an index cannot follow a setting.
PROMISED_SECONDS = 15 * 60

ON_TIME, LATE, ALERT, UNKNOWN = "on-time", "late", "alert", "unknown"


def late_after() -> timedelta:
    """A postback received later than this after its change is late."""
    return timedelta(minutes=settings.DELAY_LATE_AFTER_MINUTES)


def alert_after() -> timedelta:
    """A change with no postback (or a postback this late) is an alert."""
    return timedelta(minutes=settings.DELAY_ALERT_AFTER_MINUTES)


def late_after_seconds() -> int:
    return settings.DELAY_LATE_AFTER_MINUTES * 60


def alert_after_seconds() -> int:
    return settings.DELAY_ALERT_AFTER_MINUTES * 60


def is_late(delay_seconds: int | None) -> bool:
    return delay_seconds is not None and delay_seconds > late_after_seconds()


def is_alert_late(delay_seconds: int | None) -> bool:
    return delay_seconds is not None and delay_seconds > alert_after_seconds()


def delay_level(delay_seconds: int | None) -> str:
    """ON_TIME, LATE, ALERT, or UNKNOWN when the change's time was not known."""
    if delay_seconds is None:
        return UNKNOWN
    if is_alert_late(delay_seconds):
        return ALERT
    if is_late(delay_seconds):
        return LATE
    return ON_TIME
