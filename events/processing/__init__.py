"""Applying stored deliveries, a batch at a time: claim, parse, apply through the lifecycle, run
the alert hook, keep the dashboard's rollups true, record each delivery's outcome. Replays go
through the same code; `manage.py process_deliveries` runs it in a loop."""

from .deliveries import (
    BatchReport,
    apply_now,
    field_lookup,
    pending,
    process_batch,
    process_next_batch,
    process_pending,
    replay,
)

__all__ = [
    "BatchReport",
    "apply_now",
    "field_lookup",
    "pending",
    "process_batch",
    "process_next_batch",
    "process_pending",
    "replay",
]
