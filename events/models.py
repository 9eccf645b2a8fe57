"""The domain: credentials, stored deliveries, brands, actions and their histories."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models.functions import Coalesce, TruncDay, TruncHour
from django.utils import timezone

DEFAULT_HEADER = "X-Postback-Token"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def generate_secret() -> str:
    return secrets.token_urlsafe(32)


# === Dashboard queries (branch `dashboard`) ==========================================
# Read-only queries behind the dashboard pages, mixed into the querysets below so that
# views stay thin. Each page runs a fixed number of these, whatever the data size.


def _trunc(bucket: str, tzinfo):
    """The start of the day (or hour) an event or delivery was received, in the display zone."""
    return (TruncHour if bucket == "hour" else TruncDay)("received_at", tzinfo=tzinfo)


class ReceivedAtQueries:
    def in_period(self, start, end):
        return self.filter(received_at__gte=start, received_at__lt=end)

    def in_ranges(self, ranges):
        """Rows received in any of the [start, end) ranges (one index range scan each)."""
        q = models.Q(pk__in=[])
        for start, end in ranges:
            q |= models.Q(received_at__gte=start, received_at__lt=end)
        return self.filter(q)


class DeliveryDashboardQueries(ReceivedAtQueries):
    def newest_first(self):
        return self.order_by("-received_at", "-id")

    def outcome_counts(self) -> dict[str, int]:
        rows = self.order_by().values("outcome").annotate(n=models.Count("id"))
        return {row["outcome"]: row["n"] for row in rows}

    def last_received_at(self):
        return self.order_by("-received_at").values_list("received_at", flat=True).first()

    def for_action(self, action, event_ids):
        """Deliveries that applied or duplicated one of its events (`event_ids`), and those that failed
        for its ActionId: two index scans OR-ed together (the event_id foreign key and delivery_action_id)."""
        return self.filter(models.Q(event_id__in=list(event_ids)) | models.Q(action_id=action.action_id))


class RefusedAttemptDashboardQueries:
    def in_period(self, start, end):
        return self.filter(at__gte=start, at__lt=end)


class BrandDashboardQueries:
    def search(self, text: str):
        text = (text or "").strip()
        if not text:
            return self
        return self.filter(models.Q(campaign_id=text) | models.Q(name__icontains=text))

    def with_last_postback(self):
        """Latest event received per brand: one index probe of event_brand_recv per brand."""
        latest = ActionEvent.objects.filter(brand=models.OuterRef("pk")).order_by("-received_at", "-id")
        return self.annotate(last_received_at=models.Subquery(latest.values("received_at")[:1]))


class ActionDashboardQueries:
    def matching(self, text: str):
        """An action by its ActionId or its order id (exact)."""
        return self.filter(models.Q(action_id=text) | models.Q(oid=text))


class ActionEventDashboardQueries(ReceivedAtQueries):
    def for_brand(self, brand):
        return self.filter(brand=brand)

    def newest_first(self):
        return self.order_by("-received_at", "-id")

    def _counts(self) -> dict:
        count = models.Count("id")
        return {
            "events": count,
            "tracked": models.Count("id", filter=models.Q(kind=EventKind.TRACKED)),
            "modified": models.Count("id", filter=models.Q(kind=EventKind.MODIFIED)),
            "reversed": models.Count("id", filter=models.Q(kind=EventKind.REVERSED)),
        }

    def _money(self) -> dict:
        zero = models.Value(0, output_field=models.DecimalField(max_digits=20, decimal_places=6))
        return {
            # Payout of newly tracked actions.
            "gained": Coalesce(models.Sum("payout", filter=models.Q(kind=EventKind.TRACKED)), zero),
            # Payout deltas of modifications that took effect.
            "changed": Coalesce(
                models.Sum("delta_payout", filter=models.Q(kind=EventKind.MODIFIED, applied=True)), zero
            ),
            # Payout deltas of reversals that took effect (negative).
            "lost": Coalesce(models.Sum("delta_payout", filter=models.Q(kind=EventKind.REVERSED, applied=True)), zero),
        }

    def period_rows(self, bucket: str, tzinfo) -> list[dict]:
        """One scan: counts and money per (day or hour, currency). The overview folds these few rows
        into its totals, its money per currency and its chart."""
        return list(
            self.order_by()
            .annotate(bucket=_trunc(bucket, tzinfo))
            .values("bucket", "currency")
            .annotate(**self._counts(), **self._money())
            .order_by("bucket", "currency")
        )

    def delay_histogram(self, *group_by: str) -> list[tuple]:
        """(*group_by, delay_seconds, events) over the events that carry a delay: exact percentiles, counts
        over any threshold and the maximum follow from it, and histograms of separate parts add up."""
        rows = self.filter(delay_seconds__isnull=False).order_by().values_list(*group_by, "delay_seconds")
        return list(rows.annotate(n=models.Count("id")))

    def brand_rows(self) -> list[dict]:
        """One scan: counts and money per (brand, currency), for the brands list."""
        return list(self.order_by().values("brand_id", "currency").annotate(**self._counts(), **self._money()))

    def by_bucket(self, bucket: str, tzinfo, currency: str | None) -> list[dict]:
        """Events per day (or hour) and kind, with payout gained, changed and lost in one currency."""
        currency_q = models.Q(currency=currency) if currency is not None else models.Q()
        return list(
            self.order_by()
            .annotate(bucket=_trunc(bucket, tzinfo))
            .values("bucket")
            .annotate(
                tracked=models.Count("id", filter=models.Q(kind=EventKind.TRACKED)),
                modified=models.Count("id", filter=models.Q(kind=EventKind.MODIFIED)),
                reversed=models.Count("id", filter=models.Q(kind=EventKind.REVERSED)),
                gained=models.Sum("payout", filter=models.Q(kind=EventKind.TRACKED) & currency_q),
                changed=models.Sum("delta_payout", filter=models.Q(kind=EventKind.MODIFIED, applied=True) & currency_q),
                lost=models.Sum("delta_payout", filter=models.Q(kind=EventKind.REVERSED, applied=True) & currency_q),
            )
            .order_by("bucket")
        )

    def before_cursor(self, received_at, pk):
        """Keyset pagination: events older than (received_at, id), served by event_brand_recv."""
        return self.filter(received_at__lte=received_at).exclude(received_at=received_at, id__gte=pk)

    def after_cursor(self, received_at, pk):
        return self.filter(received_at__gte=received_at).exclude(received_at=received_at, id__lte=pk)


class RefusedAttemptQuerySet(RefusedAttemptDashboardQueries, models.QuerySet):
    pass


class BrandQuerySet(BrandDashboardQueries, models.QuerySet):
    pass


# === End of dashboard queries ==========================================================


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
    secret_hash = models.CharField(max_length=64, unique=True, editable=False)
    secret_hint = models.CharField(
        max_length=12, editable=False, help_text="The first characters, to tell secrets apart."
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="Updated at most once a minute."
    )
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Optional: refused after this time.")

    objects = CredentialQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.label} ({self.header_name}, {self.secret_hint}…)"

    @property
    def use_count(self) -> int:
        """Postbacks stored with this credential (rows deleted by `prune --delete-rows` no longer count)."""
        return self.delivery_set.count()

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


class DeliveryQuerySet(DeliveryDashboardQueries, models.QuerySet):
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

    objects = BrandQuerySet.as_manager()

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


class ActionQuerySet(ActionDashboardQueries, models.QuerySet):
    def for_brand(self, brand):
        return self.filter(brand=brand)


class Action(models.Model):
    """The current state of one impact.com action (conversion), keyed by its ActionId."""

    # Unique through Meta.constraints, not unique=True: on PostgreSQL that would add a second
    # (pattern_ops) index that no query uses and every insert pays for.
    action_id = models.CharField(max_length=255)
    brand = models.ForeignKey(
        Brand,
        on_delete=models.PROTECT,
        related_name="actions",
        db_index=False,  # action_brand_state leads with it
    )
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
        constraints = [models.UniqueConstraint(fields=["action_id"], name="action_action_id_unique")]
        indexes = [
            # Brand timeline and brands list: a brand's actions.
            models.Index(fields=["brand", "state"], name="action_brand_state"),
            # Dashboard (branch `dashboard`): the chart of a brand timeline filtered by "tracker" or
            # "sub id" (with the id: the brand's actions with that value, from the index alone),
            # and the action id / order id search of the brand timeline.
            models.Index(fields=["brand", "action_tracker_id", "id"], name="action_brand_tracker"),
            models.Index(fields=["brand", "sub_id1", "id"], name="action_brand_sub_id1"),
            models.Index(fields=["oid"], name="action_oid"),
        ]

    def __str__(self) -> str:
        return self.action_id


class ActionEventQuerySet(ActionEventDashboardQueries, models.QuerySet):
    def late(self):
        """Postbacks that arrived later than impact.com's 15-minute promise (API events have no delay)."""
        return self.filter(source=EventSource.POSTBACK, delay_seconds__gt=settings.DELAY_LATE_AFTER_MINUTES * 60)

    def alert_late(self):
        return self.filter(source=EventSource.POSTBACK, delay_seconds__gt=settings.DELAY_ALERT_AFTER_MINUTES * 60)


class ActionEvent(models.Model):
    """One entry in an action's history: what changed, from which state to which, and when."""

    # Neither foreign key needs an index of its own: event_action_seq and event_brand_recv lead with them.
    action = models.ForeignKey(Action, on_delete=models.CASCADE, related_name="events", db_index=False)
    # Denormalised from the action so a brand's timeline is one indexed range scan.
    brand = models.ForeignKey(Brand, on_delete=models.PROTECT, related_name="events", db_index=False)
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
    fingerprint = models.CharField(max_length=64)  # unique: event_fingerprint_unique
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
            models.UniqueConstraint(fields=["fingerprint"], name="event_fingerprint_unique"),
        ]
        indexes = [
            # Brand timeline: a brand's events newest first, keyset pagination on (received_at, id).
            models.Index(fields=["brand", "-received_at", "-id"], name="event_brand_recv"),
            # Overview: events in a period, by kind.
            models.Index(fields=["received_at", "kind"], name="event_recv_kind"),
            # Dashboard (branch `dashboard`): brand timeline filtered by kind or by state,
            # newest first with keyset pagination on (received_at, id).
            models.Index(fields=["brand", "kind", "-received_at", "-id"], name="event_brand_kind_recv"),
            models.Index(fields=["brand", "to_state", "-received_at", "-id"], name="event_brand_state_recv"),
            # Brand timeline "late only" (with or without a kind): the few late postbacks of a brand,
            # newest first, instead of every event of the brand. Used for any late threshold of at
            # least the default 15 minutes (DELAY_LATE_AFTER_MINUTES).
            models.Index(
                fields=["brand", "-received_at", "-id", "kind"],
                condition=models.Q(source="postback", delay_seconds__gt=15 * 60),
                name="event_brand_late_recv",
            ),
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


# =====================================================================================
# Delay alerts (issue 4): maintenance windows, the impact.com API account, changes the
# API reports, alerts with their evidence, their state changes and their notifications.
# The logic lives in events/delays.py; the API client in events/impact_api.py.
# =====================================================================================


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
            # delays: windows overlapping a delay (ends after the change happened).
            models.Index(fields=["ends_at", "starts_at"], name="maintenance_ends"),
        ]

    def __str__(self) -> str:
        return f"{self.starts_at:%Y-%m-%d %H:%M} – {self.ends_at:%Y-%m-%d %H:%M} {self.note}".strip()

    def clean(self):
        from django.core.exceptions import ValidationError

        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValidationError({"ends_at": "The end must be after the start."})


class ImpactAccount(models.Model):
    """The impact.com API account reconciliation reads (Account SID + Auth Token).

    The token is kept (Basic auth needs it) but never shown back in full: admin shows its hint.
    """

    label = models.CharField(max_length=100, default="impact.com")
    account_sid = models.CharField("Account SID", max_length=100)
    auth_token = models.CharField(max_length=200)
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
        return f"…{self.auth_token[-4:]}" if len(self.auth_token) > 8 else "…"


class ApiChange(models.Model):
    """A change impact.com's API reports (an action tracked, modified or reversed at `changed_at`).

    Matched against postbacks: `postback_event` is the postback that reported it, if any.
    """

    account = models.ForeignKey(ImpactAccount, null=True, blank=True, on_delete=models.SET_NULL)
    action_id = models.CharField(max_length=255)
    campaign_id = models.CharField(max_length=255, blank=True)
    campaign_name = models.CharField(max_length=255, blank=True)
    kind = models.CharField(max_length=10, choices=EventKind.choices)
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


class AlertKind(models.TextChoices):
    LATE = "late", "Late postbacks"
    MISSING = "missing", "Missing postbacks"
    SILENT = "silent", "Silent brand"


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
    brand = models.ForeignKey(Brand, on_delete=models.PROTECT, related_name="delay_alerts")
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
        more = f" (and {self.item_count - 1} more)" if self.item_count > 1 else ""
        return f"{self.get_kind_display()} – {self.brand}: {self.summary}{more}"

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

    name = models.CharField(max_length=50, primary_key=True)
    last_run_at = models.DateTimeField()
    host = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(default=0)
    summary = models.JSONField(default=dict, blank=True)
    last_error = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"{self.name} at {self.last_run_at:%Y-%m-%d %H:%M:%S}"


# =====================================================================================
# Security (issue 6): the optional allow-list of source networks (events/security.py).
# =====================================================================================


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


# =====================================================================================
# Dashboard rollups (issue 3): the overview's and brands list's figures for a run of closed
# days, counted once (events/rollups.py) so a 30-day period reads one row, not every event.
# =====================================================================================


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
