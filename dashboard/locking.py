"""What a locking date means for an action now, in words, pure Python: "locks in 3 days",
"locked since 2026-11-02" (impact.com sends nothing when an action locks: this is the only place
that says it)."""

from __future__ import annotations

from datetime import datetime, tzinfo

from events.impact import Lifecycle, status_group
from events.impact.vocabulary import APPROVED, REVERSED


def locking_note(locking_date: datetime | None, state: str, status: str, now: datetime, tz: tzinfo) -> dict | None:
    """{"text", "css", "title"} for an action's locking date, or None (no date, or reversed)."""
    if locking_date is None or state == Lifecycle.REVERSED or status_group(status) == REVERSED:
        return None
    if locking_date > now:
        hours = max(1, round((locking_date - now).total_seconds() / 3600))
        if hours >= 24:
            days = round(hours / 24)
            text = f"locks in {days} day{'s' if days != 1 else ''}"
        else:
            text = f"locks in {hours} hour{'s' if hours != 1 else ''}"
        return {"text": text, "css": "flag", "title": "Until then the brand may still reverse it"}
    since = f"{locking_date.astimezone(tz):%Y-%m-%d}"
    if status_group(status) != APPROVED:
        return {
            "text": f"locked since {since}, still pending",
            "css": "flag warn",
            "title": "Its locking date passed while its last Status was not approved",
        }
    return {"text": f"locked since {since}", "css": "flag ok", "title": "Safe from reversal"}
