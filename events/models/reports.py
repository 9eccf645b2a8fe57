"""The reports' table: one narrow row per action, what the money-by-status figures, the locking
calendar, the performance by dimension and the search read (events/reporting/reports.py keeps it
current inside the processor's batch transaction)."""

from __future__ import annotations

from datetime import date

from django.db import models
from django.db.models import F
from django.db.models.functions import Upper

from .actions import Action, Brand


class StatusGroup(models.TextChoices):
    """What impact.com's Status word means for the money (events.impact.status_group); "other" for a
    word outside the known ones. "Locked" is not stored: it follows from the locking date and now."""

    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REVERSED = "reversed", "Reversed"
    OTHER = "other", "Other"


def _money():
    return models.DecimalField(max_digits=20, decimal_places=6, default=0)


class ActionReport(models.Model):
    """One action as the reports see it: its brand, currency, status group, locking date, the
    dimensions the performance page groups by, and its payout gained, changed and lost (the sums of
    its events', as the overview counts them)."""

    action = models.OneToOneField(Action, on_delete=models.CASCADE, related_name="report")
    brand = models.ForeignKey(Brand, on_delete=models.CASCADE, related_name="+", db_index=False)
    currency = models.CharField(max_length=8, blank=True)
    group = models.CharField(max_length=10, choices=StatusGroup.choices)
    reversed = models.BooleanField(default=False, help_text="Reversed by now (its state or its status).")
    locking_date = models.DateTimeField(null=True, blank=True)
    tracked_at = models.DateTimeField(help_text="When its first postback arrived.")
    payout = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    gained = _money()
    changed = _money()
    lost = _money()
    sub_id1 = models.CharField(max_length=255, blank=True)
    sub_id2 = models.CharField(max_length=255, blank=True)
    sub_id3 = models.CharField(max_length=255, blank=True)
    tracker = models.CharField(max_length=255, blank=True)
    promo_code = models.CharField(max_length=255, blank=True)
    referring_type = models.CharField(max_length=255, blank=True)

    class Meta:
        indexes = [
            # Money by status for a period, and performance by dimension: the actions tracked in the
            # period (across brands), read from the index's range; the money by status from the index
            # alone on PostgreSQL (a 30-day overview at 1M events: 195 ms reading the rows, 35 ms not).
            models.Index(
                fields=["tracked_at"],
                include=["brand", "currency", "group", "reversed", "locking_date", "payout"],
                name="report_tracked",
            ),
            # The same for one brand (a brand's page, the performance page with a brand chosen).
            models.Index(fields=["brand", "tracked_at"], name="report_brand_tracked"),
            # Locking calendar and "as of now": the not reversed actions by locking date, a window of
            # days at a time; the drill-down of one day.
            # (With the id: the drill-down's keyset order.)
            models.Index(fields=["locking_date", "id"], condition=models.Q(reversed=False), name="report_locking"),
            # Search: a SubId (1 to 3) whatever the case, across brands.
            models.Index(Upper("sub_id1"), F("tracked_at"), name="report_sub_id1_ci"),
            models.Index(Upper("sub_id2"), F("tracked_at"), name="report_sub_id2_ci"),
            models.Index(Upper("sub_id3"), F("tracked_at"), name="report_sub_id3_ci"),
        ]

    def __str__(self) -> str:
        return f"report of action {self.action_id}"


# The locking day of the actions without a locking date: past every day a page can ask for.
NO_LOCKING_DAY = date(9999, 12, 31)


class StatusTotal(models.Model):
    """Actions and payout per brand, currency, status group and locking day (of the display zone
    `zone`): the "as of now" money by status and the locking calendar read these few rows instead of
    every action. Kept by adding each batch's changes (events/reporting/reports.py); counted again
    from ActionReport when the display zone changes or a bulk writer drops them."""

    zone = models.CharField(max_length=64)
    brand = models.ForeignKey(Brand, on_delete=models.CASCADE, related_name="+", db_index=False)
    currency = models.CharField(max_length=8, blank=True)
    group = models.CharField(max_length=10, choices=StatusGroup.choices)
    locking_day = models.DateField(help_text="NO_LOCKING_DAY for actions without a locking date.")
    actions = models.IntegerField(default=0)
    payout = models.DecimalField(max_digits=24, decimal_places=6, default=0)

    class Meta:
        constraints = [
            # The upsert of a batch's changes adds to the row of its key; the calendar reads a range of
            # locking days of one zone from the same index.
            models.UniqueConstraint(
                fields=["zone", "locking_day", "brand", "currency", "group"], name="status_total_key"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.zone} {self.locking_day} {self.group}"


class DayTotal(models.Model):
    """StatusTotal without the brand, and without the setup page's test brand: what the pages across
    brands read (the overview's money by status as of now, the locking calendar), a row per
    currency and status group a day rather than one per brand too. Kept like StatusTotal."""

    zone = models.CharField(max_length=64)
    locking_day = models.DateField(help_text="NO_LOCKING_DAY for actions without a locking date.")
    currency = models.CharField(max_length=8, blank=True)
    group = models.CharField(max_length=10, choices=StatusGroup.choices)
    actions = models.IntegerField(default=0)
    payout = models.DecimalField(max_digits=24, decimal_places=6, default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["zone", "locking_day", "currency", "group"], name="day_total_key"),
        ]

    def __str__(self) -> str:
        return f"{self.zone} {self.locking_day} {self.group}"


class TrackedTotal(models.Model):
    """Actions and payout per day tracked, brand, currency, status group and locking day (days of the
    display zone `zone`): the money by status of the actions tracked in a period reads the period's
    days of these rows instead of every action tracked in it. Kept like StatusTotal."""

    zone = models.CharField(max_length=64)
    tracked_day = models.DateField()
    brand = models.ForeignKey(Brand, on_delete=models.CASCADE, related_name="+", db_index=False)
    currency = models.CharField(max_length=8, blank=True)
    group = models.CharField(max_length=10, choices=StatusGroup.choices)
    locking_day = models.DateField(help_text="NO_LOCKING_DAY for actions without a locking date.")
    actions = models.IntegerField(default=0)
    payout = models.DecimalField(max_digits=24, decimal_places=6, default=0)

    class Meta:
        constraints = [
            # The batch's upsert adds to the row of its key; a period reads a range of tracked days.
            models.UniqueConstraint(
                fields=["zone", "tracked_day", "brand", "currency", "group", "locking_day"], name="tracked_total_key"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.zone} {self.tracked_day} {self.group}"


class DimensionTotal(models.Model):
    """Per day tracked, brand, currency, dimension of the performance page (a DIMENSIONS key of
    events/reporting/report_queries.py) and its value: the actions tracked, those reversed by now, and
    their payout gained, changed and lost. The performance page sums a period's days of these rows
    instead of reading every action tracked in it. Kept like StatusTotal."""

    zone = models.CharField(max_length=64)
    dimension = models.CharField(max_length=16)
    tracked_day = models.DateField()
    brand = models.ForeignKey(Brand, on_delete=models.CASCADE, related_name="+", db_index=False)
    currency = models.CharField(max_length=8, blank=True)
    value = models.CharField(max_length=255, blank=True)
    tracked = models.IntegerField(default=0)
    reversed = models.IntegerField(default=0)
    gained = models.DecimalField(max_digits=24, decimal_places=6, default=0)
    changed = models.DecimalField(max_digits=24, decimal_places=6, default=0)
    lost = models.DecimalField(max_digits=24, decimal_places=6, default=0)

    class Meta:
        constraints = [
            # The batch's upsert adds to the row of its key; the page reads one dimension's range of days.
            models.UniqueConstraint(
                fields=["zone", "dimension", "tracked_day", "brand", "currency", "value"], name="dimension_total_key"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.zone} {self.tracked_day} {self.dimension}={self.value}"


class ReportZone(models.Model):
    """The display zone the totals (StatusTotal, DayTotal, TrackedTotal, DimensionTotal) were counted in
    (at most one row)."""

    zone = models.CharField(max_length=64, unique=True)
    counted_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.zone
