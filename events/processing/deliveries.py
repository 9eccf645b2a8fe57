"""Applying a stored delivery: parse it (`impact`), apply it (`lifecycle`), run the alert hook,
drop the rollups of the day it lands in, and record its outcome. Replays go through the same code.
"""

from __future__ import annotations

import logging
import time
import traceback

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from events import impact, lifecycle
from events.alerts import after_apply
from events.impact import escape_nul
from events.models import Delivery, Outcome, sql
from events.reporting import rollups

logger = logging.getLogger(__name__)

_lookup_cache: dict[tuple[str, ...], dict[str, str]] = {}


def field_lookup() -> dict[str, str]:
    key = tuple(settings.POSTBACK_UPDATE_TIME_FIELDS)
    if key not in _lookup_cache:
        _lookup_cache[key] = impact.build_lookup(key)
    return _lookup_cache[key]


def process(delivery: Delivery) -> Delivery:
    """Parse and apply a stored delivery; its outcome says what happened. Safe to call again (replay)."""
    if delivery.pruned_at is not None:  # `manage.py prune` removed the payload: keep what it said
        return delivery
    started = time.monotonic()
    delivery.attempts += 1
    delivery.processed_at = timezone.now()
    delivery.reason = ""
    delivery.traceback = ""
    try:
        postback = impact.parse(
            delivery.query_string, bytes(delivery.body), delivery.content_type, lookup=field_lookup()
        )
    except impact.InvalidPayload as exc:
        delivery.outcome = Outcome.INVALID
        delivery.reason = escape_nul(str(exc))
        delivery.processing_ms = _elapsed_ms(started)
        _record_outcome(delivery, _PROCESSED_FIELDS)
        return delivery
    except Exception as exc:  # a bug in the parser: keep the delivery for replay once fixed
        return _failed(delivery, exc, started)

    delivery.action_id = postback.action_id[:255]
    try:
        if lifecycle.can_create() and _create(postback, delivery, started):
            return delivery
        with transaction.atomic():
            result = lifecycle.apply(postback, received_at=delivery.received_at, delivery=delivery)
            after_apply(result)  # a late postback's alert; the answer to a change the API reported
            delivery.outcome = result.outcome
            delivery.event = result.event
            delivery.processing_ms = _elapsed_ms(started)
            _record_outcome(delivery, [*_PROCESSED_FIELDS, "action_id", "event"])
    except Exception as exc:
        return _failed(delivery, exc, started)
    return delivery


def _create(postback: impact.Postback, delivery: Delivery, started: float) -> bool:
    """The first postback of an action, when nothing else is to be done for it, in one statement
    (lifecycle.create) with its outcome; False if it is not that, and nothing was written."""
    delivery.outcome = Outcome.APPLIED
    delivery.processing_ms = _elapsed_ms(started)  # up to the statement that writes it
    fields = [*_PROCESSED_FIELDS, "action_id"]
    created = lifecycle.create(postback, received_at=delivery.received_at, delivery=delivery, outcome_fields=fields)
    if created is None:
        delivery.outcome = Outcome.RECEIVED
        return False
    rollups.changed(delivery.received_at)
    return True


def _failed(delivery: Delivery, exc: Exception, started: float) -> Delivery:
    """Record a processing error with its traceback (call from an `except` block)."""
    logger.exception("delivery %s failed", delivery.pk)
    delivery.outcome = Outcome.FAILED
    delivery.event = None
    delivery.reason = escape_nul(f"{type(exc).__name__}: {exc}")[:2000]
    delivery.traceback = escape_nul(traceback.format_exc())[-20_000:]
    delivery.processing_ms = _elapsed_ms(started)
    # If the database is gone this raises too: the view answers 503, the delivery stays
    # `received` (replayable) and impact.com's retry is deduplicated.
    _record_outcome(delivery, [*_PROCESSED_FIELDS, "action_id", "event"])
    return delivery


def _record_outcome(delivery: Delivery, fields: list[str]) -> None:
    sql.update(delivery, fields)
    rollups.changed(delivery.received_at)  # a replay changes a day the overview may have counted


_PROCESSED_FIELDS = ["outcome", "reason", "traceback", "attempts", "processed_at", "processing_ms"]


def _elapsed_ms(started: float) -> int:
    return max(0, round((time.monotonic() - started) * 1000))


def replay(deliveries) -> dict[str, int]:
    """Process stored deliveries again; counts outcomes. Applied ones stay applied."""
    counts: dict[str, int] = {}
    for delivery in deliveries.iterator(chunk_size=500):
        outcome = process(delivery).outcome
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts
