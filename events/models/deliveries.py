"""What arrives: the credentials postbacks must carry, the allow-list, refused attempts, and every
delivery as stored before anything parses it."""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from events.common import crypto
from events.common.networks import parse_network

DEFAULT_HEADER = "X-Postback-Token"


def hash_secret(secret: str) -> str:
    """Keyed (CREDENTIAL_HASH_KEY): what is stored of a credential, and what a presented one is compared by."""
    return crypto.credential_hash(secret)


def generate_secret() -> str:
    return secrets.token_urlsafe(32)


class ReceivedAtQueries:
    def in_period(self, start, end):
        return self.filter(received_at__gte=start, received_at__lt=end)

    def in_ranges(self, ranges):
        """Rows received in any of the [start, end) ranges (one index range scan each)."""
        q = models.Q(pk__in=[])
        for start, end in ranges:
            q |= models.Q(received_at__gte=start, received_at__lt=end)
        return self.filter(q)


class CredentialQuerySet(models.QuerySet):
    def with_uses(self):
        return self.annotate(uses=models.Count("delivery"))

    def usable(self, now=None):
        now = now or timezone.now()
        return self.filter(active=True).filter(models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now))


class Credential(models.Model):
    """A secret impact.com sends with every postback (custom header or `token` parameter)."""

    label = models.CharField(
        max_length=100, help_text="Where this secret is used, e.g. 'impact.com support ticket 1234'."
    )
    header_name = models.CharField(
        max_length=100,
        default=DEFAULT_HEADER,
        help_text="The HTTP header impact.com support adds to every postback.",
    )
    secret_hash = models.CharField(max_length=64, unique=True, editable=False, help_text="HMAC-SHA256, keyed.")
    secret_hint = models.CharField(
        max_length=12, blank=True, editable=False, help_text="The last 4 characters, to tell secrets apart."
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="Updated at most once a minute."
    )
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Optional: refused after this time.")
    simulated_history = models.BooleanField(
        default=False,
        editable=False,
        help_text="Made by simulate_postbacks for a history it backdates once sent (the demo): the delay "
        "alerts of its postbacks are judged after the backdating, not on arrival.",
    )

    objects = CredentialQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.label} ({self.header_name}, …{self.secret_hint})"

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        CredentialHeader.objects.get_or_create(name=self.header_name.lower())

    def set_secret(self, secret: str) -> None:
        self.secret_hash = hash_secret(secret)
        self.secret_hint = secret[-4:] if len(secret) >= 16 else ""

    def matches(self, presented_hash: str) -> bool:
        return hmac.compare_digest(self.secret_hash, presented_hash)

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @classmethod
    def create_with_secret(cls, label: str, header_name: str = DEFAULT_HEADER, secret: str | None = None, **kwargs):
        """Create a credential; returns (credential, secret). The secret is not stored."""
        secret = secret or generate_secret()
        credential = cls(label=label, header_name=header_name, **kwargs)
        credential.set_secret(secret)
        credential.save()
        return credential, secret


class CredentialHeader(models.Model):
    """Every header name a credential was ever given: redacted from every stored delivery for good.

    impact.com keeps sending a credential's header for a while after it was switched off (rotation),
    and a deleted credential's header may still carry its secret: a name is never forgotten.
    """

    name = models.CharField(max_length=100, unique=True, help_text="Lower case.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    def __str__(self) -> str:
        return self.name


class RefusalReason(models.TextChoices):
    NO_CREDENTIAL_CONFIGURED = "no_credential_configured", "No active credential configured"
    MISSING_CREDENTIAL = "missing_credential", "No credential presented"
    INVALID_CREDENTIAL = "invalid_credential", "Credential not recognised"
    EXPIRED_CREDENTIAL = "expired_credential", "Credential expired"
    ADDRESS_NOT_ALLOWED = "address_not_allowed", "Source address not in the allow-list"
    THROTTLED = "throttled", "Too many refused attempts from the address (429)"
    # Not a reason of its own: refusals answered while the throttle's store failed (each is also
    # counted under its own reason). Logged, and shown apart in /metrics.
    THROTTLE_FAILED = "throttle_failed", "Refused without the throttle: its store failed"


class RefusedAttemptQuerySet(models.QuerySet):
    def in_period(self, start, end):
        return self.filter(at__gte=start, at__lt=end)


class RefusedAttempt(models.Model):
    """A refused postback (authentication failed); capped at REFUSED_ATTEMPTS_KEEP rows.

    Never holds the presented secret: only header *names* are kept.
    """

    at = models.DateTimeField(default=timezone.now, db_index=True)
    reason = models.CharField(max_length=40, choices=RefusalReason.choices)
    remote_addr = models.CharField(max_length=64, blank=True)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=300)
    header_names = models.JSONField(default=list)
    size = models.PositiveIntegerField(default=0)

    objects = RefusedAttemptQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.remote_addr} {self.reason}"


class RefusalCounter(models.Model):
    """How many postbacks were refused, per reason, since the beginning."""

    reason = models.CharField(max_length=40, choices=RefusalReason.choices, primary_key=True)
    count = models.PositiveBigIntegerField(default=0)
    last_at = models.DateTimeField(null=True)

    def __str__(self) -> str:
        return f"{self.reason}: {self.count}"


class Outcome(models.TextChoices):
    RECEIVED = "received", "Received (not processed yet)"
    APPLIED = "applied", "Applied"
    DUPLICATE = "duplicate", "Duplicate"
    INVALID = "invalid", "Invalid"
    FAILED = "failed", "Failed"


class DeliveryQuerySet(ReceivedAtQueries, models.QuerySet):
    def pending(self):
        """Stored and not processed yet (the partial index delivery_pending): a processor's queue."""
        return self.filter(outcome=Outcome.RECEIVED, pruned_at__isnull=True)

    def backlog(self) -> tuple[int, datetime | None]:
        """How many deliveries wait to be processed, and when the oldest of them was received."""
        pending = self.pending()
        oldest = pending.order_by("id").values_list("received_at", flat=True).first()
        return (pending.count() if oldest is not None else 0), oldest

    def outcome_counts(self) -> dict[str, int]:
        rows = self.order_by().values("outcome").annotate(n=models.Count("id"))
        return {row["outcome"]: row["n"] for row in rows}

    def without_tests(self, prefix: str):
        """Not the deliveries of synthetic test postbacks (their ActionIds start with `prefix`)."""
        return self.exclude(action_id__startswith=prefix)

    def last_received_at(self):
        return self.order_by("-received_at").values_list("received_at", flat=True).first()

    def for_action(self, action, event_ids):
        """Deliveries that applied or duplicated one of its events (`event_ids`), and those that failed
        for its ActionId: two index scans OR-ed together (the event_id foreign key and delivery_action_id)."""
        return self.filter(models.Q(event_id__in=list(event_ids)) | models.Q(action_id=action.action_id))

    def replayable(self):
        # A pruned delivery has no payload left to parse.
        return self.filter(outcome__in=[Outcome.INVALID, Outcome.FAILED, Outcome.RECEIVED], pruned_at__isnull=True)


class Arrival(models.Model):
    """What a delivery arrives with: the columns the endpoint writes (its credential aside, whose
    deletion rule differs between the two models below)."""

    received_at = models.DateTimeField(default=timezone.now)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=300)
    query_string = models.TextField(blank=True, help_text="Credentials redacted.")
    content_type = models.CharField(max_length=200, blank=True)
    body = models.BinaryField(blank=True, default=b"", help_text="Credentials redacted.")
    headers = models.JSONField(default=dict, help_text="Credentials redacted.")
    remote_addr = models.CharField(max_length=64, blank=True)

    class Meta:
        abstract = True


class Delivery(Arrival):
    """One HTTP request that passed authentication, stored before anything parses it."""

    credential = models.ForeignKey(Credential, null=True, blank=True, on_delete=models.SET_NULL)
    # What processing writes. The database fills them in for a row the endpoint stores (db_default:
    # an IncomingDelivery leaves them out); a Delivery made in Python still gets `default`.
    outcome = models.CharField(
        max_length=12, choices=Outcome.choices, default=Outcome.RECEIVED, db_default=Outcome.RECEIVED
    )
    reason = models.TextField(blank=True, default="", db_default="", help_text="Why it is invalid or failed.")
    traceback = models.TextField(blank=True, default="", db_default="")
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0, db_default=0, help_text="Times processed (1 + replays).")
    action_id = models.CharField(
        max_length=255, blank=True, default="", db_default="", help_text="The ActionId, once parsed."
    )
    event = models.ForeignKey(
        "ActionEvent",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="deliveries",
        help_text="The event this delivery applied, or duplicated.",
    )
    processing_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="Milliseconds spent parsing and applying it (last attempt)."
    )
    pruned_at = models.DateTimeField(
        null=True, blank=True, help_text="When `manage.py prune` removed its raw payload (body, query, headers)."
    )

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "deliveries"
        permissions = [("replay_delivery", "Can replay deliveries (dashboard and admin)")]
        indexes = [
            # Deliveries page and admin list: newest first, filtered by outcome.
            models.Index(fields=["outcome", "-received_at"], name="delivery_outcome_recv"),
            models.Index(fields=["-received_at"], name="delivery_received"),
            # Admin search by ActionId.
            models.Index(fields=["action_id"], name="delivery_action_id"),
            # Processors: the received deliveries not processed yet, oldest first (a queue); also the
            # backlog's size and age on the overview, /healthz and /metrics.
            models.Index(
                fields=["id"],
                name="delivery_pending",
                condition=models.Q(outcome="received", pruned_at__isnull=True),
            ),
            # `manage.py prune`: deliveries received before the cutoff whose payload is still there.
            models.Index(
                fields=["received_at"], name="delivery_unpruned_recv", condition=models.Q(pruned_at__isnull=True)
            ),
        ]

    def __str__(self) -> str:
        return f"Delivery {self.pk} ({self.outcome})"

    @property
    def body_text(self) -> str:
        return bytes(self.body).decode("utf-8", errors="replace")


class IncomingDelivery(Arrival):
    """A delivery as the endpoint stores it: the columns of `Delivery` it arrives with, nothing else.

    The same table (unmanaged: `Delivery` owns it and its migrations); the columns processing writes
    take their database defaults, so the row is `received` and waits for a processor. Inserting
    these nine fields through the ORM costs the request path a tenth fewer instructions than a
    `Delivery` with all eighteen, whose compiling and quoting grow with each field.
    """

    # Deleting a credential sets Delivery's to NULL; this view of the same column must not do it twice.
    credential = models.ForeignKey(
        Credential, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )

    class Meta:
        managed = False
        db_table = "events_delivery"

    def __str__(self) -> str:
        return f"Delivery {self.pk} (incoming)"


class AllowedNetwork(models.Model):
    """A source network postbacks may come from (impact.com publishes its ranges).

    No active row: every address may send. Otherwise a postback from elsewhere is refused with
    403 and recorded like any refusal. The address is the peer's, or the X-Forwarded-For entry
    appended by a proxy listed in TRUSTED_PROXIES (events.common.networks).
    """

    cidr = models.CharField(
        "network",
        max_length=50,
        unique=True,
        help_text="An address or a network in CIDR form, IPv4 or IPv6: 203.0.113.0/24, 2001:db8::/32, 198.51.100.7.",
    )
    label = models.CharField(max_length=100, blank=True, help_text="e.g. 'impact.com, published 2026-11'.")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["cidr"]

    def __str__(self) -> str:
        return f"{self.cidr} ({self.label})" if self.label else self.cidr

    def clean(self) -> None:
        try:
            self.cidr = str(parse_network(self.cidr))
        except ValueError as exc:
            raise ValidationError({"cidr": str(exc)}) from exc
