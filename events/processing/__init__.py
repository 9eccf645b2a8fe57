"""Applying stored deliveries: parse, apply through the lifecycle, run the alert hook, keep the
dashboard's rollups true, record each delivery's outcome. Replays go through the same code."""

from .deliveries import field_lookup, process, replay

__all__ = ["field_lookup", "process", "replay"]
