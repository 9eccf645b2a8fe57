"""Forwarding: the publisher's own endpoints, the outbox of signed messages to them, and every
attempt to send one."""

from __future__ import annotations

import base64
import secrets

from django.db import models
from django.utils import timezone

from .actions import Action, ActionEvent, Brand

SECRET_PREFIX = "whsec_"


def generate_signing_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


class MessageType(models.TextChoices):
    TRACKED = "action.tracked", "Tracked"
    MODIFIED = "action.modified", "Modified"
    REVERSED = "action.reversed", "Reversed"
    STATUS_CHANGED = "action.status_changed", "Status changed"
    TEST = "test", "Test message"


# What an endpoint can subscribe to (the test message is sent to it whatever it chose).
KINDS = ("tracked", "modified", "reversed", "status_changed")


class Endpoint(models.Model):
    """A URL of the publisher's own systems that receives every change of the kinds it subscribed to."""

    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=255, blank=True)
    kinds = models.JSONField(default=list, blank=True, help_text="tracked, modified, reversed, status_changed.")
    brand = models.ForeignKey(
        Brand, null=True, blank=True, on_delete=models.PROTECT, related_name="+", help_text="Empty: every brand."
    )
    active = models.BooleanField(default=True)
    secret = models.CharField(max_length=100, editable=False)
    previous_secret = models.CharField(
        max_length=100, blank=True, editable=False, help_text="Still signing during a rotation."
    )
    failing_since = models.DateTimeField(null=True, blank=True, help_text="First failure since the last success.")
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["id"]
        permissions = [("send_test_message", "Can send a test message to a forwarding endpoint")]

    def __str__(self) -> str:
        return self.description or self.url

    def save(self, *args, **kwargs):
        if not self.secret:
            self.secret = generate_signing_secret()
        if not self.kinds:
            self.kinds = list(KINDS)
        super().save(*args, **kwargs)

    @property
    def secrets(self) -> list[str]:
        """Every secret that signs its messages: the new one first, then the one being rotated out."""
        return [s for s in (self.secret, self.previous_secret) if s]

    @property
    def secret_hint(self) -> str:
        return f"…{self.secret[-4:]}" if self.secret else ""

    def rotate_secret(self) -> str:
        """Start a rotation: a new secret signs beside the current one until `end_rotation()`."""
        self.previous_secret, self.secret = self.secret, generate_signing_secret()
        self.save(update_fields=["secret", "previous_secret"])
        return self.secret

    def end_rotation(self) -> None:
        self.previous_secret = ""
        self.save(update_fields=["previous_secret"])

    def wants(self, kind: str, brand_id: int) -> bool:
        return kind in self.kinds and (self.brand_id is None or self.brand_id == brand_id)


class MessageStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class MessageQuerySet(models.QuerySet):
    def pending(self):
        return self.filter(status=MessageStatus.PENDING)


class Message(models.Model):
    """One change of an action for one endpoint: the body is fixed when the change is written, and
    the same `msg_id` (the `webhook-id` header) goes with every attempt."""

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="messages")
    msg_id = models.CharField(max_length=64, unique=True)
    type = models.CharField(max_length=30, choices=MessageType.choices)
    action = models.ForeignKey(Action, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    event = models.ForeignKey(ActionEvent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    seq = models.PositiveIntegerField(default=0, help_text="The event's place in its action's history.")
    body = models.TextField(help_text="The JSON body, exactly as signed and sent.")
    status = models.CharField(max_length=10, choices=MessageStatus.choices, default=MessageStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    first_attempt_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_until = models.DateTimeField(null=True, blank=True, help_text="A dispatcher is sending it.")
    finished_at = models.DateTimeField(null=True, blank=True, help_text="Delivered or given up.")

    objects = MessageQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [
            # Dispatcher: pending messages due, oldest first (a queue).
            models.Index(fields=["next_attempt_at", "id"], condition=models.Q(status="pending"), name="message_due"),
            # Dispatcher: is an earlier message of the same action still pending for this endpoint?
            models.Index(
                fields=["endpoint", "action", "seq"], condition=models.Q(status="pending"), name="message_action_head"
            ),
            # Endpoint page: its messages newest first; replay of failed ones since a time. Without the
            # status, so the dispatcher's "earlier pending message of this action?" probe can only take
            # message_action_head (with this index on status it was planned as a scan of every pending
            # message per candidate before the table had statistics).
            models.Index(fields=["endpoint", "-created_at"], name="message_endpoint_created"),
            # Endpoint pages: the failed count, the failed messages newest first, replaying them since a time.
            models.Index(
                fields=["endpoint", "-created_at"], condition=models.Q(status="failed"), name="message_failed"
            ),
        ]
        permissions = [("replay_message", "Can send forwarded messages again (dashboard and admin)")]

    def __str__(self) -> str:
        return f"{self.msg_id} {self.type}"


class Attempt(models.Model):
    """One try to send a message: the answer (truncated) or the error, and how long it took."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attempt_rows")
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="attempts")
    at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    response = models.TextField(blank=True, help_text="The start of the answer's body.")
    error = models.CharField(max_length=500, blank=True)
    success = models.BooleanField(default=False)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            # Endpoint page: its last attempts and its success rate.
            models.Index(fields=["endpoint", "-at"], name="attempt_endpoint_at"),
        ]

    def __str__(self) -> str:
        return f"{self.message_id} {self.status_code or self.error}"
