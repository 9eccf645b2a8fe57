"""The domain: credentials, stored deliveries, brands, actions and their histories."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

DEFAULT_HEADER = "X-Postback-Token"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def generate_secret() -> str:
    return secrets.token_urlsafe(32)


class CredentialQuerySet(models.QuerySet):
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
    secret_hash = models.CharField(max_length=64, unique=True, editable=False)
    secret_hint = models.CharField(
        max_length=12, editable=False, help_text="The first characters, to tell secrets apart."
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    use_count = models.PositiveBigIntegerField(default=0, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Optional: refused after this time.")

    objects = CredentialQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.label} ({self.header_name}, {self.secret_hint}…)"

    def set_secret(self, secret: str) -> None:
        self.secret_hash = hash_secret(secret)
        self.secret_hint = secret[:4]

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


class RefusalReason(models.TextChoices):
    NO_CREDENTIAL_CONFIGURED = "no_credential_configured", "No active credential configured"
    MISSING_CREDENTIAL = "missing_credential", "No credential presented"
    INVALID_CREDENTIAL = "invalid_credential", "Credential not recognised"
    EXPIRED_CREDENTIAL = "expired_credential", "Credential expired"
    ADDRESS_NOT_ALLOWED = "address_not_allowed", "Source address not in the allow-list"
    THROTTLED = "throttled", "Too many refused attempts from the address (429)"


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


class DeliveryQuerySet(models.QuerySet):
    def replayable(self):
        # A pruned delivery has no payload left to parse.
        return self.filter(outcome__in=[Outcome.INVALID, Outcome.FAILED, Outcome.RECEIVED], pruned_at__isnull=True)


class Delivery(models.Model):
    """One HTTP request that passed authentication, stored before anything parses it."""

    received_at = models.DateTimeField(default=timezone.now)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=300)
    query_string = models.TextField(blank=True, help_text="Credentials redacted.")
    content_type = models.CharField(max_length=200, blank=True)
    body = models.BinaryField(blank=True, default=b"", help_text="Credentials redacted.")
    headers = models.JSONField(default=dict, help_text="Credentials redacted.")
    remote_addr = models.CharField(max_length=64, blank=True)
    credential = models.ForeignKey(Credential, null=True, blank=True, on_delete=models.SET_NULL)
    outcome = models.CharField(max_length=12, choices=Outcome.choices, default=Outcome.RECEIVED)
    reason = models.TextField(blank=True, help_text="Why it is invalid or failed.")
    traceback = models.TextField(blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Times processed (1 + replays).")
    action_id = models.CharField(max_length=255, blank=True, help_text="The ActionId, once parsed.")
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
        indexes = [
            # Deliveries page and admin list: newest first, filtered by outcome.
            models.Index(fields=["outcome", "-received_at"], name="delivery_outcome_recv"),
            models.Index(fields=["-received_at"], name="delivery_received"),
            # Admin search by ActionId.
            models.Index(fields=["action_id"], name="delivery_action_id"),
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


class Brand(models.Model):
    """A brand (impact.com campaign/program) whose actions we earn on."""

    UNKNOWN = "unknown"

    campaign_id = models.CharField(max_length=255, unique=True)
    name = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "campaign_id"]

    def __str__(self) -> str:
        return self.name or self.campaign_id


class ActionState(models.TextChoices):
    TRACKED = "tracked", "Tracked"
    MODIFIED = "modified", "Modified"
    REVERSED = "reversed", "Reversed"


class EventKind(models.TextChoices):
    TRACKED = "tracked", "Tracked"
    MODIFIED = "modified", "Modified"
    REVERSED = "reversed", "Reversed"


class EventSource(models.TextChoices):
    POSTBACK = "postback", "Postback"
    API = "api", "impact.com API"
    IMPORT = "import", "Import"


# Fields of an action that a postback can change; each event records its diff of them.
TRACKED_FIELDS = (
    "status",
    "status_detail",
    "amount",
    "payout",
    "currency",
    "intended_amount",
    "intended_payout",
    "original_amount",
    "original_currency",
    "event_date",
    "creation_date",
    "locking_date",
    "referring_date",
    "cleared_date",
    "action_tracker_id",
    "action_tracker_name",
    "action_type",
    "referring_type",
    "media_partner_id",
    "ad_id",
    "oid",
    "shared_id",
    "sub_id1",
    "sub_id2",
    "sub_id3",
    "promo_code",
    "event_code",
    "referring_domain",
)
MONEY_FIELDS = ("amount", "payout", "intended_amount", "intended_payout", "original_amount")


def _money(**kwargs):
    return models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True, **kwargs)


class ActionQuerySet(models.QuerySet):
    def for_brand(self, brand):
        return self.filter(brand=brand)


class Action(models.Model):
    """The current state of one impact.com action (conversion), keyed by its ActionId."""

    action_id = models.CharField(max_length=255, unique=True)
    brand = models.ForeignKey(Brand, on_delete=models.PROTECT, related_name="actions")
    state = models.CharField(max_length=10, choices=ActionState.choices)
    status = models.CharField(max_length=40, blank=True, help_text="impact.com's Status: PENDING, APPROVED, REVERSED.")
    status_detail = models.CharField(max_length=255, blank=True)
    amount = _money()
    payout = _money()
    currency = models.CharField(max_length=8, blank=True)
    intended_amount = _money()
    intended_payout = _money()
    original_amount = _money()
    original_currency = models.CharField(max_length=8, blank=True)
    event_date = models.DateTimeField(null=True, blank=True)
    creation_date = models.DateTimeField(null=True, blank=True)
    locking_date = models.DateTimeField(null=True, blank=True)
    referring_date = models.DateTimeField(null=True, blank=True)
    cleared_date = models.DateTimeField(null=True, blank=True)
    action_tracker_id = models.CharField(max_length=255, blank=True)
    action_tracker_name = models.CharField(max_length=255, blank=True)
    action_type = models.CharField(max_length=255, blank=True)
    referring_type = models.CharField(max_length=255, blank=True)
    media_partner_id = models.CharField(max_length=255, blank=True)
    ad_id = models.CharField(max_length=255, blank=True)
    oid = models.CharField("order id", max_length=255, blank=True)
    shared_id = models.CharField(max_length=255, blank=True)
    sub_id1 = models.CharField(max_length=255, blank=True)
    sub_id2 = models.CharField(max_length=255, blank=True)
    sub_id3 = models.CharField(max_length=255, blank=True)
    promo_code = models.CharField(max_length=255, blank=True)
    event_code = models.CharField(max_length=255, blank=True)
    referring_domain = models.CharField(max_length=255, blank=True)
    # The impact-side time of the change whose money the action now shows (None: unknown).
    money_changed_at = models.DateTimeField(null=True, blank=True)
    # Tie-break between two changes with the same impact-side time.
    money_fingerprint = models.CharField(max_length=64, blank=True)
    tracked_seen = models.BooleanField(default=False, help_text="A tracked postback has arrived.")
    event_count = models.PositiveIntegerField(default=0)
    first_received_at = models.DateTimeField()
    last_received_at = models.DateTimeField()

    objects = ActionQuerySet.as_manager()

    class Meta:
        indexes = [
            # Brand timeline and brands list: a brand's actions.
            models.Index(fields=["brand", "state"], name="action_brand_state"),
        ]

    def __str__(self) -> str:
        return self.action_id


class ActionEventQuerySet(models.QuerySet):
    def late(self):
        return self.filter(delay_seconds__gt=settings.DELAY_LATE_AFTER_MINUTES * 60)

    def alert_late(self):
        return self.filter(delay_seconds__gt=settings.DELAY_ALERT_AFTER_MINUTES * 60)


class ActionEvent(models.Model):
    """One entry in an action's history: what changed, from which state to which, and when."""

    action = models.ForeignKey(Action, on_delete=models.CASCADE, related_name="events")
    # Denormalised from the action so a brand's timeline is one indexed range scan.
    brand = models.ForeignKey(Brand, on_delete=models.PROTECT, related_name="events")
    seq = models.PositiveIntegerField(help_text="1 for the first event of the action, in arrival order.")
    kind = models.CharField(max_length=10, choices=EventKind.choices)
    from_state = models.CharField(max_length=10, choices=ActionState.choices, blank=True)
    to_state = models.CharField(max_length=10, choices=ActionState.choices)
    changes = models.JSONField(default=dict, help_text="Field-by-field diff: {field: [old, new]}.")
    status = models.CharField(max_length=40, blank=True)
    amount = _money()
    payout = _money()
    delta_amount = _money()
    delta_payout = _money()
    currency = models.CharField(max_length=8, blank=True)
    changed_at = models.DateTimeField(null=True, blank=True, help_text="impact-side time of the change, if known.")
    received_at = models.DateTimeField()
    delay_seconds = models.IntegerField(null=True, blank=True, help_text="received_at - changed_at.")
    source = models.CharField(max_length=10, choices=EventSource.choices, default=EventSource.POSTBACK)
    applied = models.BooleanField(default=True, help_text="Its values became the action's current values.")
    superseded = models.BooleanField(default=False, help_text="A later change (or the reversal) overrides it.")
    out_of_order = models.BooleanField(default=False)
    order_uncertain = models.BooleanField(default=False, help_text="No impact-side time: arrival order was used.")
    anomaly = models.CharField(max_length=255, blank=True, help_text="An impossible transition, explained.")
    fingerprint = models.CharField(max_length=64, unique=True)
    duplicate_count = models.PositiveIntegerField(default=0, help_text="Retries of this postback received later.")
    extra = models.JSONField(default=dict, blank=True, help_text="Parameters outside impact.com's vocabulary.")
    delivery = models.ForeignKey(
        Delivery, null=True, blank=True, on_delete=models.SET_NULL, related_name="created_events"
    )

    objects = ActionEventQuerySet.as_manager()

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["action", "seq"], name="event_action_seq"),
        ]
        indexes = [
            # Brand timeline: a brand's events newest first, keyset pagination on (received_at, id).
            models.Index(fields=["brand", "-received_at", "-id"], name="event_brand_recv"),
            # Overview: events in a period, by kind.
            models.Index(fields=["received_at", "kind"], name="event_recv_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.action_id} #{self.seq} {self.kind}"

    @property
    def delay(self) -> timedelta | None:
        return None if self.delay_seconds is None else timedelta(seconds=self.delay_seconds)

    @property
    def is_late(self) -> bool:
        return self.delay_seconds is not None and self.delay_seconds > settings.DELAY_LATE_AFTER_MINUTES * 60

    @property
    def is_alert_late(self) -> bool:
        return self.delay_seconds is not None and self.delay_seconds > settings.DELAY_ALERT_AFTER_MINUTES * 60


class AllowedNetwork(models.Model):
    """A source network postbacks may come from (impact.com publishes its ranges).

    No active row: every address may send. Otherwise a postback from elsewhere is refused with
    403 and recorded like any refusal. The address is the peer's, or the X-Forwarded-For entry
    appended by a proxy listed in TRUSTED_PROXIES (see events/security.py).
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
        from django.core.exceptions import ValidationError

        from .security import parse_network

        try:
            self.cidr = str(parse_network(self.cidr))
        except ValueError as exc:
            raise ValidationError({"cidr": str(exc)}) from exc
