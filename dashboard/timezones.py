"""The display time zone (DISPLAY_TIME_ZONE), validated in settings."""

from __future__ import annotations

from functools import cache
from zoneinfo import ZoneInfo

from django.conf import settings


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def display_zone() -> ZoneInfo:
    return _zone(settings.DISPLAY_TIME_ZONE)
