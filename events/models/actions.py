"""What happened: brands, actions (their current state) and action events (their history)."""

from __future__ import annotations

from django.db import models
from django.db.models import F
from django.db.models.functions import Coalesce, TruncDay, TruncHour, Upper
from django.utils import timezone

from events.impact import Lifecycle, promises

from .deliveries import Delivery, ReceivedAtQueries


def _trunc(bucket: str, tzinfo):
    """The start of the day (or hour) an event or delivery was received, in the display zone."""
    return (TruncHour if bucket == "hour" else TruncDay)("received_at", tzinfo=tzinfo)


class BrandQuerySet(models.QuerySet):
    def tests(self):
        """The brand of the setup page's synthetic test postbacks (at most one)."""
        return self.filter(campaign_id=Brand.TEST)

    def search(self, text: str):
        text = (text or "").strip()
        if not text:
            return self
        return self.filter(models.Q(campaign_id=text) | models.Q(name__icontains=text))

    def with_last_postback(self):
        """Latest event received per brand: one index probe of event_brand_recv per brand."""
        latest = ActionEvent.objects.filter(brand=models.OuterRef("pk")).order_by("-received_at", "-id")
        return self.annotate(last_received_at=models.Subquery(latest.values("received_at")[:1]))


class Brand(models.Model):
    """A brand (impact.com campaign/program) whose actions we earn on."""

    UNKNOWN = "unknown"
    # The setup page's synthetic test postbacks (events.simulation.synthetic) go to this campaign,
    # with ActionIds starting with TEST_ACTION_PREFIX: the pages mark them and leave them out of totals.
    TEST = "test-postback"
    TEST_ACTION_PREFIX = "TEST-"

    campaign_id = models.CharField(max_length=255, unique=True)
    name = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = BrandQuerySet.as_manager()

    class Meta:
        ordering = ["name", "campaign_id"]

    def __str__(self) -> str:
        return self.name or self.campaign_id

    @property
    def is_test(self) -> bool:
        return self.campaign_id == self.TEST


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


# The figures ActionEventQuerySet counts and sums per row, and the rollups keep.
COUNTS = ("events", *Lifecycle.values)
MONEY = ("gained", "changed", "lost")


def _money_field(**kwargs):
    return models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True, **kwargs)


class ActionQuerySet(models.QuerySet):
    def matching(self, text: str):
        """Actions by their ActionId (whatever the case) or a part of their order id ("9246735" finds
        "ORD-9246735"). Reads every action it is given: narrow it to a brand first."""
        return self.filter(models.Q(action_id__iexact=text) | models.Q(oid__icontains=text))

    def for_brand(self, brand):
        return self.filter(brand=brand)

    def reversed_by_now(self, start, end):
        """Actions first seen in [start, end), with their tracked postback, that are reversed by now: the
        period's cohort, read from the reversed ones alone (action_reversed_first_seen)."""
        return self.filter(
            state=Lifecycle.REVERSED, tracked_seen=True, first_received_at__gte=start, first_received_at__lt=end
        )


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
    state = models.CharField(max_length=10, choices=Lifecycle.choices)
    status = models.CharField(max_length=40, blank=True, help_text="impact.com's Status: PENDING, APPROVED, REVERSED.")
    status_detail = models.CharField(max_length=255, blank=True)
    amount = _money_field()
    payout = _money_field()
    currency = models.CharField(max_length=8, blank=True)
    intended_amount = _money_field()
    intended_payout = _money_field()
    original_amount = _money_field()
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
            # Brand timeline: its chart filtered by "tracker" (with the id: the brand's actions with that
            # value, from the index alone) or by "sub id", which matches whatever the case (upper-cased).
            models.Index(fields=["brand", "action_tracker_id", "id"], name="action_brand_tracker"),
            models.Index(F("brand"), Upper("sub_id1"), F("id"), name="action_brand_sub_id1_ci"),
            # An action by its order id (admin search).
            models.Index(fields=["oid"], name="action_oid"),
            # Overview and brands list: the period's actions reversed by now (its cohort), from the few
            # reversed ones; an action enters it once, when it turns reversed.
            models.Index(
                fields=["first_received_at"], condition=models.Q(state="reversed"), name="action_reversed_first_seen"
            ),
        ]

    def __str__(self) -> str:
        return self.action_id


class ActionEventQuerySet(ReceivedAtQueries, models.QuerySet):
    def late(self):
        """Postbacks that arrived late (API events have no delay)."""
        return self.filter(source=EventSource.POSTBACK, delay_seconds__gt=promises.late_after_seconds())

    def for_brand(self, brand):
        return self.filter(brand=brand)

    def with_sub_id1(self, text: str):
        """Events of actions whose Sub ID 1 is `text`, whatever the case ("Blog" finds "blog"), compared
        upper-cased as action_brand_sub_id1_ci is built."""
        return self.alias(sub_id1_ci=Upper("action__sub_id1")).filter(sub_id1_ci=Upper(models.Value(text)))

    def without_tests(self):
        """Not the setup page's synthetic test postbacks (kept out of every total)."""
        return self.exclude(brand__in=Brand.objects.tests().values("id"))

    def _counts(self) -> dict:
        """COUNTS: every event, and the events of each kind."""
        kinds = {kind: models.Count("id", filter=models.Q(kind=kind)) for kind in Lifecycle.values}
        return {"events": models.Count("id"), **kinds}

    def _money(self, only: models.Q | None = None, zero_when_none: bool = True) -> dict:
        """MONEY: payout gained by tracking, changed by modifications and lost by reversals (negative)
        that took effect; `only` narrows the events summed (e.g. to one currency)."""
        only = only or models.Q()
        sums = {
            "gained": models.Sum("payout", filter=models.Q(kind=Lifecycle.TRACKED) & only),
            "changed": models.Sum("delta_payout", filter=models.Q(kind=Lifecycle.MODIFIED, applied=True) & only),
            "lost": models.Sum("delta_payout", filter=models.Q(kind=Lifecycle.REVERSED, applied=True) & only),
        }
        if not zero_when_none:
            return sums
        zero = models.Value(0, output_field=models.DecimalField(max_digits=20, decimal_places=6))
        return {name: Coalesce(total, zero) for name, total in sums.items()}

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
            .annotate(**self._counts(), **self._money(currency_q, zero_when_none=False))
            .order_by("bucket")
        )


class ActionEvent(models.Model):
    """One entry in an action's history: what changed, from which state to which, and when."""

    # Neither foreign key needs an index of its own: event_action_seq and event_brand_recv lead with them.
    action = models.ForeignKey(Action, on_delete=models.CASCADE, related_name="events", db_index=False)
    # Denormalised from the action so a brand's timeline is one indexed range scan.
    brand = models.ForeignKey(Brand, on_delete=models.PROTECT, related_name="events", db_index=False)
    seq = models.PositiveIntegerField(help_text="1 for the first event of the action, in arrival order.")
    kind = models.CharField(max_length=10, choices=Lifecycle.choices)
    from_state = models.CharField(max_length=10, choices=Lifecycle.choices, blank=True)
    to_state = models.CharField(max_length=10, choices=Lifecycle.choices)
    changes = models.JSONField(default=dict, help_text="Field-by-field diff: {field: [old, new]}.")
    status = models.CharField(max_length=40, blank=True)
    amount = _money_field()
    payout = _money_field()
    delta_amount = _money_field()
    delta_payout = _money_field()
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
    # An entry recorded from impact.com's API keeps its fingerprint (the tie-break between changes at
    # the same time) when its postback joins it; the postback's is kept here, so its retries are duplicates.
    postback_fingerprint = models.CharField(
        max_length=64, null=True, blank=True, help_text="The postback that joined this entry recorded from the API."
    )
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
            # Only the few joined entries have one: an index of them alone, which costs other writes nothing.
            models.UniqueConstraint(
                fields=["postback_fingerprint"],
                condition=models.Q(postback_fingerprint__isnull=False),
                name="event_postback_fingerprint_unique",
            ),
        ]
        indexes = [
            # Brand timeline: a brand's events newest first, keyset pagination on (received_at, id).
            models.Index(fields=["brand", "-received_at", "-id"], name="event_brand_recv"),
            # Overview: events in a period, by kind.
            models.Index(fields=["received_at", "kind"], name="event_recv_kind"),
            # Brand timeline filtered by kind or by state,
            # newest first with keyset pagination on (received_at, id).
            models.Index(fields=["brand", "kind", "-received_at", "-id"], name="event_brand_kind_recv"),
            models.Index(fields=["brand", "to_state", "-received_at", "-id"], name="event_brand_state_recv"),
            # Brand timeline "late only" (with or without a kind): the few late postbacks of a brand,
            # newest first, instead of every event of the brand. Used for any late threshold of at
            # least the default 15 minutes (DELAY_LATE_AFTER_MINUTES).
            models.Index(
                fields=["brand", "-received_at", "-id", "kind"],
                condition=models.Q(source="postback", delay_seconds__gt=promises.PROMISED_SECONDS),
                name="event_brand_late_recv",
            ),
            # Processor: the entries of the batch's actions recorded from the API that a postback may join
            # (few: only backfilled ones waiting for their postback), without reading every history.
            models.Index(
                fields=["action"], condition=models.Q(source="api", delivery__isnull=True), name="event_api_awaiting"
            ),
            # ... and the entries their postback joined, which another postback of the same change (its
            # kind and update time, other bytes) reports too: a duplicate of the entry.
            models.Index(
                fields=["action"], condition=models.Q(postback_fingerprint__isnull=False), name="event_api_joined"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action} #{self.seq} {self.kind}"
