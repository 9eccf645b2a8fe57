"""Applying stored deliveries, a batch at a time.

The request path only stores a delivery (`received`) and answers. A processor then claims the
received deliveries in id order (`select_for_update(skip_locked=True)` on PostgreSQL, so several
processors on several hosts never take the same one; on SQLite the batch's IMMEDIATE transaction
runs one writer at a time) and, in one transaction: parses each (`impact`), applies them through
the lifecycle (`lifecycle.apply_batch`), runs the alert hook once, writes the forwarding outbox's
messages for the changes, keeps the dashboard's rollups and the reports' rows true and records every outcome. A delivery
that raises is isolated: the batch is applied again one delivery at a time, and the one that raises
is marked `failed` with its traceback while the rest commits. A lost connection rolls the whole
batch back: its deliveries stay `received` and are taken again. Replays go through the same code.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.db.models import F, OuterRef, Subquery
from django.utils import timezone

from events import forwarding, impact, lifecycle
from events.alerts import after_batch
from events.common import logs
from events.impact import escape_nul
from events.models import ActionEvent, Delivery, Outcome
from events.reporting import reports, rollups

logger = logging.getLogger(__name__)

# A batch whose new action another processor created meanwhile is applied again (it then finds
# the action); past this many tries it is applied one delivery at a time.
CONCURRENT_CREATION_RETRIES = 3
# The connection is gone: nothing can be recorded, the batch rolls back and is taken again later.
CONNECTION_ERRORS = (OperationalError, InterfaceError)

_lookup_cache: dict[tuple[str, ...], dict[str, str]] = {}


def field_lookup() -> dict[str, str]:
    key = tuple(settings.POSTBACK_UPDATE_TIME_FIELDS)
    if key not in _lookup_cache:
        _lookup_cache[key] = impact.build_lookup(key)
    return _lookup_cache[key]


@dataclass
class BatchReport:
    """What one batch did: deliveries processed, their outcomes, and how long it took."""

    outcomes: Counter = field(default_factory=Counter)
    milliseconds: int = 0

    @property
    def count(self) -> int:
        return sum(self.outcomes.values())

    def line(self) -> str:
        outcomes = ", ".join(f"{name} {n}" for name, n in sorted(self.outcomes.items())) or "nothing"
        return f"{self.count} deliveries in {self.milliseconds} ms: {outcomes}"


def pending():
    """Deliveries stored and not processed yet (served by the partial index delivery_pending)."""
    return Delivery.objects.pending()


def _claimable(deliveries):
    """Oldest first, locked as they are read, skipping those another processor holds (PostgreSQL;
    SQLite's IMMEDIATE transaction already runs one processor at a time)."""
    deliveries = deliveries.order_by("id")
    if connection.features.has_select_for_update_skip_locked:
        deliveries = deliveries.select_for_update(skip_locked=True)
    return deliveries


def process_next_batch(size: int) -> BatchReport | None:
    """Claim up to `size` received deliveries, oldest first, and apply them; None when none waits."""
    with transaction.atomic():
        deliveries = list(_claimable(pending())[:size])
        if not deliveries:
            return None
        report = process_batch(deliveries)
    logger.info("batch: %s", report.line())
    return report


def process_pending(size: int | None = None) -> BatchReport:
    """Apply every delivery waiting now (or claimed by no other processor), batch after batch."""
    total = BatchReport()
    while (report := process_next_batch(size or settings.PROCESSING_BATCH_SIZE)) is not None:
        total.outcomes.update(report.outcomes)
        total.milliseconds += report.milliseconds
    return total


def apply_now(delivery_ids: list[int], timeout: float = 10.0, sleep: Callable[[float], None] = time.sleep) -> None:
    """For callers that want an outcome (the setup page's test postback): apply these deliveries
    unless a processor has claimed them already, in which case wait for it, up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        with transaction.atomic():
            claimed = list(_claimable(pending().filter(pk__in=delivery_ids)))
            if claimed:
                process_batch(claimed)
        if not pending().filter(pk__in=delivery_ids).exists() or time.monotonic() >= deadline:
            return
        sleep(0.1)


def replay(deliveries, progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
    """Process stored deliveries again, through the same code, in id order; counts outcomes.
    Applied ones stay applied; pruned ones keep what they said. `progress(done, total)` after
    each batch."""
    counts: Counter = Counter()
    ids = list(deliveries.order_by("id").values_list("id", flat=True))
    size = settings.PROCESSING_BATCH_SIZE
    for start in range(0, len(ids), size):
        with transaction.atomic():
            chunk = list(Delivery.objects.select_for_update().filter(pk__in=ids[start : start + size]).order_by("id"))
            counts.update(process_batch(chunk).outcomes)
        if progress is not None:
            progress(min(start + size, len(ids)), len(ids))
    return dict(counts)


def process_batch(deliveries: list[Delivery]) -> BatchReport:
    """Parse and apply claimed deliveries (locked, in id order) and record their outcomes, inside
    the caller's transaction."""
    started = time.monotonic()
    pruned = Counter(d.outcome for d in deliveries if d.pruned_at is not None)  # no payload left: they keep it
    deliveries = [d for d in deliveries if d.pruned_at is None]
    for attempt in range(CONCURRENT_CREATION_RETRIES):
        try:
            with transaction.atomic():
                outcomes = _apply(deliveries, started)
            break
        except IntegrityError:
            if attempt + 1 < CONCURRENT_CREATION_RETRIES:
                continue  # another processor created one of the batch's actions: it is found now
            logger.warning("batch of %s kept conflicting: applied one delivery at a time", len(deliveries))
            outcomes = _apply_one_by_one(deliveries, started)
        except CONNECTION_ERRORS:
            raise
        except Exception:
            logger.warning("batch of %s raised: applied one delivery at a time", len(deliveries), exc_info=True)
            outcomes = _apply_one_by_one(deliveries, started)
            break
    return BatchReport(outcomes + pruned, _elapsed_ms(started))


def _apply_one_by_one(deliveries: list[Delivery], started: float) -> Counter:
    """Each delivery in a savepoint of its own: the one that raises is marked failed, the rest commit."""
    outcomes: Counter = Counter()
    for delivery in deliveries:
        try:
            with transaction.atomic():
                outcomes.update(_apply([delivery], started))
        except CONNECTION_ERRORS:
            raise
        except Exception as exc:
            _failed(delivery, exc, started)
            outcomes[Outcome.FAILED] += 1
    return outcomes


def _apply(deliveries: list[Delivery], started: float) -> Counter:
    """The batch in one go: parse, apply, hook, outcomes. Raises on any error (nothing is kept)."""
    changes, invalid = [], []
    for delivery in deliveries:
        try:
            postback = impact.parse(
                delivery.query_string, bytes(delivery.body), delivery.content_type, lookup=field_lookup()
            )
        except impact.InvalidPayload as exc:
            delivery.reason = escape_nul(str(exc))
            invalid.append(delivery)
            continue
        delivery.action_id = postback.action_id[:255]
        changes.append(lifecycle.Change(postback, delivery.received_at, delivery))
        logs.bind_delivery(delivery.pk)
        logger.debug("delivery %s: action %s", delivery.pk, delivery.action_id)
    logs.bind_delivery(None)  # the batch's own lines are about no one delivery
    results = lifecycle.apply_batch(changes) if changes else []
    after_batch(results)
    forwarding.write_messages(results)
    # The reports' rows of the actions the batch changed, in the same transaction as the changes.
    reports.refresh(r.event.action.pk for r in results if r.new)
    # A postback that joined an entry backfilled from the API moves it from the backfill's day.
    rollups.changed(*(d.received_at for d in deliveries), *(r.moved_from for r in results if r.moved_from))
    return _record_outcomes(changes, results, invalid, _elapsed_ms(started) // max(1, len(deliveries)))


def _record_outcomes(changes, results, invalid: list[Delivery], share_ms: int) -> Counter:
    """Applied deliveries in one UPDATE (each one's event points at it); the rest, fewer, in one upsert."""
    now = timezone.now()
    common = {"processed_at": now, "processing_ms": share_ms, "traceback": ""}
    applied = [c.delivery.pk for c, r in zip(changes, results, strict=True) if r.outcome == Outcome.APPLIED]
    if applied:
        # No ordering: each is one probe of the index on the event's delivery (a sort there, from
        # ActionEvent.Meta.ordering, led the planner away from it before the first ANALYZE).
        created = ActionEvent.objects.filter(delivery=OuterRef("pk")).order_by()
        Delivery.objects.filter(pk__in=applied).update(
            outcome=Outcome.APPLIED,
            reason="",
            event_id=Subquery(created.values("id")[:1]),
            action_id=Subquery(created.values("action__action_id")[:1]),
            attempts=F("attempts") + 1,
            **common,
        )
    others = []
    for change, result in zip(changes, results, strict=True):
        if result.outcome != Outcome.APPLIED:
            delivery = change.delivery
            delivery.outcome, delivery.event, delivery.reason = result.outcome, result.event, ""
            others.append(delivery)
    for delivery in invalid:
        delivery.outcome, delivery.event = Outcome.INVALID, None
        others.append(delivery)
    for delivery in others:
        delivery.processed_at, delivery.processing_ms, delivery.traceback = now, share_ms, ""
        delivery.attempts += 1  # the row is locked: no one else counts meanwhile
    if others:
        # An upsert on their primary keys (each row is there and locked, so each takes the UPDATE
        # branch): one statement, where bulk_update's CASE per field and row cost more than the
        # rest of the outcomes together.
        Delivery.objects.bulk_create(
            others,
            update_conflicts=True,
            unique_fields=["id"],
            update_fields=["outcome", "event", "reason", "action_id", "attempts", *common],
        )
    outcomes = Counter(r.outcome for r in results)
    outcomes[Outcome.INVALID] += len(invalid)
    return +outcomes


def _failed(delivery: Delivery, exc: Exception, started: float) -> None:
    """Record a processing error with its traceback (call from an `except` block)."""
    logger.exception("delivery %s failed", delivery.pk)
    Delivery.objects.filter(pk=delivery.pk).update(
        outcome=Outcome.FAILED,
        event=None,
        reason=escape_nul(f"{type(exc).__name__}: {exc}")[:2000],
        traceback=escape_nul(traceback.format_exc())[-20_000:],
        processed_at=timezone.now(),
        processing_ms=_elapsed_ms(started),
        attempts=delivery.attempts + 1,
        action_id=delivery.action_id,
    )


def _elapsed_ms(started: float) -> int:
    return max(0, round((time.monotonic() - started) * 1000))
