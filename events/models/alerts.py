"""Delay alerts: maintenance windows, alerts with their evidence and state history, notifications
to send, and the watcher's heartbeat."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from events.common.times import format_duration

from .actions import ActionEvent, Brand
from .forwarding import Endpoint
from .reconciliation import ApiChange


class MaintenanceWindowQuerySet(models.QuerySet):
    def overlapping(self, start, end):
        """Windows that overlap [start, end]."""
        return self.filter(starts_at__lte=end, ends_at__gte=start)


class MaintenanceWindow(models.Model):
    """A period when impact.com paused postbacks: alerts whose delay overlaps it are expected."""

    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    note = models.CharField(max_length=255, blank=True, help_text="e.g. the notice impact.com sent.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = MaintenanceWindowQuerySet.as_manager()

    class Meta:
        ordering = ["-starts_at"]
        indexes = [
            # Alerts: windows overlapping a delay (ends after the change happened).
            models.Index(fields=["ends_at", "starts_at"], name="maintenance_ends"),
        ]

    def __str__(self) -> str:
        return f"{self.starts_at:%Y-%m-%d %H:%M} – {self.ends_at:%Y-%m-%d %H:%M} {self.note}".strip()

    def clean(self):
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValidationError({"ends_at": "The end must be after the start."})


class AlertKind(models.TextChoices):
    LATE = "late", "Late postbacks"
    MISSING = "missing", "Missing postbacks"
    SILENT = "silent", "Silent brand"
    STALLED = "stalled", "Processing stalled"
    FORWARDING = "forwarding", "Forwarding failing"


class AlertStatus(models.TextChoices):
    OPEN = "open", "Open"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


ACTIVE_STATUSES = (AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED)


class DelayAlertQuerySet(models.QuerySet):
    def active(self):
        """Open or acknowledged: not resolved yet."""
        return self.filter(status__in=ACTIVE_STATUSES)

    def open_counts_by_brand(self) -> dict[int, int]:
        """{brand_id: number of active alerts}, for badges on brand rows and timelines."""
        rows = self.active().values_list("brand_id").annotate(n=models.Count("id")).order_by()
        return dict(rows)

    def active_by_event(self, event_ids) -> dict[int, int]:
        """{event id: active alert id} for the given timeline events that are evidence in an active alert."""
        rows = AlertItem.objects.filter(event_id__in=event_ids, alert__status__in=ACTIVE_STATUSES)
        return dict(rows.order_by().values_list("event_id", "alert_id"))


class DelayAlert(models.Model):
    """An alert about postbacks: late, missing or a silent brand; one per brand and kind while active.

    Its items are the evidence (one per action change); its changes are the state history.
    """

    kind = models.CharField(max_length=10, choices=AlertKind.choices)
    status = models.CharField(max_length=12, choices=AlertStatus.choices, default=AlertStatus.OPEN)
    brand = models.ForeignKey(
        Brand,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="delay_alerts",
        help_text="Empty for an alert about this installation itself (processing stalled).",
    )
    endpoint = models.ForeignKey(
        Endpoint,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="alerts",
        help_text="Forwarding alerts: the endpoint that fails.",
    )
    expected = models.BooleanField(default=False, help_text="Its delay overlaps a maintenance window: not notified.")
    summary = models.CharField(max_length=500, help_text="What the first item says.")
    item_count = models.PositiveIntegerField(default=0)
    max_delay_seconds = models.IntegerField(null=True, blank=True)
    since = models.DateTimeField(null=True, blank=True, help_text="Silent brand: the last postback before the silence.")
    opened_at = models.DateTimeField(default=timezone.now)
    last_item_at = models.DateTimeField(default=timezone.now)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    remind_at = models.DateTimeField(null=True, blank=True, help_text="Next reminder while open.")

    objects = DelayAlertQuerySet.as_manager()

    class Meta:
        permissions = [("acknowledge_delayalert", "Can acknowledge and resolve delay alerts")]
        ordering = ["-opened_at", "-id"]
        constraints = [
            # Grouping: a backlog burst adds items to the brand's active alert instead of opening more.
            models.UniqueConstraint(
                fields=["brand", "kind", "expected"],
                condition=models.Q(status__in=["open", "acknowledged"]),
                name="alert_one_active",
            ),
        ]
        indexes = [
            # Alerts page: by status (open first), newest first.
            models.Index(fields=["status", "-opened_at"], name="alert_status_opened"),
            # Silent check and a brand's alert history.
            models.Index(fields=["brand", "kind", "-opened_at"], name="alert_brand_kind"),
            # Watcher: reminders due (a queue).
            models.Index(
                fields=["remind_at"], condition=models.Q(status="open", expected=False), name="alert_reminder_due"
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def title(self) -> str:
        """What the alert is about as it stands: kind, brand (or endpoint, or the installation), how
        many changes, the longest delay.

        (Not its first item: items come and go, and the first is rarely the one that matters.)
        """
        about = self.brand or self.endpoint or "postback processing"
        return f"{self.get_kind_display()} – {about}: {self.description}"

    @property
    def description(self) -> str:
        if self.kind in (AlertKind.SILENT, AlertKind.STALLED, AlertKind.FORWARDING):
            return self.summary  # says how things stand, rewritten as they change
        changes = f"{self.item_count} change{'' if self.item_count == 1 else 's'}"
        if self.max_delay_seconds is None:
            return f"{changes}, no postback yet" if self.kind == AlertKind.MISSING else changes
        so_far = " so far" if self.kind == AlertKind.MISSING else ""
        return f"{changes}, longest delay {format_duration(self.max_delay_seconds)}{so_far}"

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES


class AlertItem(models.Model):
    """Evidence: one action change, when impact.com made it, and when its postback arrived (or not)."""

    alert = models.ForeignKey(DelayAlert, on_delete=models.CASCADE, related_name="items")
    action_id = models.CharField(max_length=255)
    change = models.CharField(max_length=10, blank=True, help_text="tracked, modified or reversed.")
    status = models.CharField(max_length=40, blank=True)
    changed_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(null=True, blank=True, help_text="When its postback arrived; empty: absent.")
    delay_seconds = models.IntegerField(null=True, blank=True)
    event = models.ForeignKey(ActionEvent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    api_change = models.OneToOneField(
        ApiChange, null=True, blank=True, on_delete=models.SET_NULL, related_name="alert_item"
    )
    backfilled_at = models.DateTimeField(null=True, blank=True, help_text="Applied from the API (source api).")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["changed_at", "id"]
        indexes = [
            # Alert page and CSV: an alert's evidence in change order.
            models.Index(fields=["alert", "changed_at"], name="alertitem_alert"),
        ]

    def __str__(self) -> str:
        return f"{self.action_id} {self.change}"

    @property
    def delay(self) -> timedelta | None:
        return None if self.delay_seconds is None else timedelta(seconds=self.delay_seconds)


class AlertChange(models.Model):
    """One change of an alert's state: who, why, when (like healthchecks' Flip)."""

    alert = models.ForeignKey(DelayAlert, on_delete=models.CASCADE, related_name="changes")
    at = models.DateTimeField(default=timezone.now)
    from_status = models.CharField(max_length=12, choices=AlertStatus.choices, blank=True)
    to_status = models.CharField(max_length=12, choices=AlertStatus.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.from_status or '-'} -> {self.to_status}"

    @property
    def who(self) -> str:
        return self.user.get_username() if self.user_id else "watcher"


class NotificationChannel(models.TextChoices):
    EMAIL = "email", "Email"
    WEBHOOK = "webhook", "Webhook"


class NotificationReason(models.TextChoices):
    OPENED = "opened", "Opened"
    RESOLVED = "resolved", "Resolved"
    REMINDER = "reminder", "Reminder"


class Notification(models.Model):
    """An outbox row: one message about one alert on one channel. Claimed with a guarded update."""

    alert = models.ForeignKey(DelayAlert, on_delete=models.CASCADE, related_name="notifications")
    reason = models.CharField(max_length=10, choices=NotificationReason.choices)
    channel = models.CharField(max_length=10, choices=NotificationChannel.choices)
    created_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)
    gave_up = models.BooleanField(default=False)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            # Watcher: notifications to send (a queue).
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(sent_at__isnull=True, gave_up=False),
                name="notification_due",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reason} by {self.channel}"


class WatcherHeartbeat(models.Model):
    """When `watch_delays` last ran a pass, where, and what it did (for /healthz and the alerts page)."""

    DELAY_WATCHER = "watch_delays"  # the name the delay watcher's row has

    name = models.CharField(max_length=50, primary_key=True)
    last_run_at = models.DateTimeField()
    host = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(default=0)
    summary = models.JSONField(default=dict, blank=True)
    last_error = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"{self.name} at {self.last_run_at:%Y-%m-%d %H:%M:%S}"
