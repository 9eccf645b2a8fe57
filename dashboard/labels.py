"""What the pages call each field of an action: one label everywhere (filters, details, diffs)."""

from __future__ import annotations

import re

LABELS = {
    "action_id": "Action ID",
    "oid": "Order ID",
    "action_tracker_id": "Tracker ID",
    "action_tracker_name": "Tracker name",
    "sub_id1": "Sub ID 1",
    "sub_id2": "Sub ID 2",
    "sub_id3": "Sub ID 3",
    "shared_id": "Shared ID (click)",
    "status": "impact.com status",
    "status_detail": "Status detail",
}
_WORDS = {"id": "ID"}


def field_label(name: str) -> str:
    """`sub_id1` -> `Sub ID 1`, `media_partner_id` -> `Media partner ID`."""
    if name in LABELS:
        return LABELS[name]
    words = re.sub(r"(\D)(\d+)$", r"\1_\2", name).split("_")
    text = " ".join(_WORDS.get(word, word) for word in words if word)
    return text[:1].upper() + text[1:]
