"""What impact.com's API says: the account reconciliation reads, and the changes it reported."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from events.impact import Lifecycle

from .actions import ActionEvent
from .fields import EncryptedTextField, UnreadableSecret


class ImpactAccount(models.Model):
    """The impact.com API account reconciliation reads (Account SID + Auth Token).

    The token is kept (Basic auth needs it), encrypted at rest with ENCRYPTION_KEY, and never shown
    back: admin shows its last 4 characters.
    """

    label = models.CharField(max_length=100, default="impact.com")
    account_sid = models.CharField("Account SID", max_length=100)
    auth_token = EncryptedTextField(help_text="Encrypted with ENCRYPTION_KEY.")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # Reconciliation cursor: impact-side times up to this one have been read.
    synced_through = models.DateTimeField(null=True, blank=True)
    last_reconciled_at = models.DateTimeField(null=True, blank=True)
    last_result = models.TextField(blank=True)
    last_error = models.TextField(blank=True)
    # Request budget: requests made in the hour starting at budget_hour.
    budget_hour = models.DateTimeField(null=True, blank=True)
    budget_used = models.PositiveIntegerField(default=0)
    rate_remaining = models.IntegerField(null=True, blank=True, help_text="X-RateLimit-Remaining-hour, last seen.")
    paused_until = models.DateTimeField(null=True, blank=True, help_text="Retry-After asked us to wait until then.")

    def __str__(self) -> str:
        return f"{self.label} ({self.account_sid})"

    @property
    def token_hint(self) -> str:
        if isinstance(self.auth_token, UnreadableSecret):
            return "not readable with ENCRYPTION_KEY: enter the token again"
        return f"…{self.auth_token[-4:]}" if len(self.auth_token) > 8 else "…"


class ApiChange(models.Model):
    """A change impact.com's API reports (an action tracked, modified or reversed at `changed_at`).

    Matched against postbacks: `postback_event` is the postback that reported it, if any.
    """

    account = models.ForeignKey(ImpactAccount, null=True, blank=True, on_delete=models.SET_NULL)
    action_id = models.CharField(max_length=255)
    campaign_id = models.CharField(max_length=255, blank=True)
    campaign_name = models.CharField(max_length=255, blank=True)
    kind = models.CharField(max_length=10, choices=Lifecycle.choices)
    state = models.CharField(max_length=40, blank=True)
    changed_at = models.DateTimeField(help_text="impact-side time of the change.")
    payload = models.JSONField(default=dict, help_text="The API record, as received.")
    fetched_at = models.DateTimeField(default=timezone.now)
    postback_event = models.ForeignKey(
        ActionEvent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", help_text="Its postback."
    )
    received_at = models.DateTimeField(null=True, blank=True, help_text="When its postback arrived.")
    backfilled_event = models.ForeignKey(
        ActionEvent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    alerted_at = models.DateTimeField(null=True, blank=True, help_text="A missing-postback alert was opened.")

    class Meta:
        constraints = [
            # reconcile_impact: reading the same change again (overlapping windows) stores nothing new.
            models.UniqueConstraint(fields=["action_id", "kind", "changed_at"], name="apichange_unique"),
        ]
        indexes = [
            # Check pass: unanswered changes past their deadline, not alerted yet (a queue).
            models.Index(
                fields=["changed_at"],
                condition=models.Q(postback_event__isnull=True, alerted_at__isnull=True),
                name="apichange_due",
            ),
            # Ingest: does this postback answer a change still waiting for one?
            models.Index(
                fields=["action_id"], condition=models.Q(postback_event__isnull=True), name="apichange_waiting"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action_id} {self.kind} at {self.changed_at:%Y-%m-%d %H:%M:%S}"
