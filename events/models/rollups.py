"""Cached figures of the dashboard: the overview's and the brands list's closed days."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class OverviewRollup(models.Model):
    """The overview's and the brands list's figures for the closed days `first_day`..`last_day` of a
    display zone, cached.

    Exact, not sampled: per day and currency the counts by kind and the money sums (the chart
    and the money cards), the delays as a histogram (two lists: each delay seen, ascending, and
    how many events had it) from which percentiles, late counts and the maximum follow exactly,
    the deliveries by outcome; and per brand its counts, money and delay histogram.
    events/rollups.py counts it on first need and drops it when a write lands in one of its days
    (replays, backfills, deletions).
    """

    zone = models.CharField(max_length=64, help_text="The display time zone the days belong to.")
    first_day = models.DateField()
    last_day = models.DateField()
    starts_at = models.DateTimeField(help_text="The first day's first instant in its zone.")
    ends_at = models.DateTimeField(help_text="The first instant after the last day.")
    rows = models.JSONField(default=list, help_text="Per day and currency: counts by kind and money.")
    delay_seconds = models.JSONField(default=list, help_text="Every delay seen, ascending.")
    delay_counts = models.JSONField(default=list, help_text="Events with each of those delays.")
    deliveries = models.JSONField(default=dict, help_text="{outcome: deliveries received in those days}.")
    brand_rows = models.JSONField(default=list, help_text="Per brand and currency: counts by kind and money.")
    brand_delays = models.JSONField(default=dict, help_text="{brand id: [delays seen, events with each]}.")
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            # Overview: the closed days of the period shown, by zone.
            models.UniqueConstraint(fields=["zone", "first_day", "last_day"], name="rollup_zone_days"),
        ]
        indexes = [
            # rollups.forget(): the rollups (any zone) that overlap a time range.
            models.Index(fields=["ends_at"], name="rollup_ends"),
        ]

    def __str__(self) -> str:
        return f"{self.zone} {self.first_day}..{self.last_day}"
