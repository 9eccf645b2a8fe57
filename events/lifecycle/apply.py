"""Applying a change: the one place where an action's state changes.

`apply()` runs inside a transaction with the action row locked (`select_for_update`),
so two postbacks for the same action are applied one after the other whatever the
number of workers. `create()` writes an action's first postback in one statement
instead (no row to lock yet: the unique ActionId orders concurrent first postbacks,
and any but the first go through `apply()`). Both decide through `rules`.

Callers drop the dashboard's rollups of the day they wrote in (`reporting.rollups.changed`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import F

from events.impact import Lifecycle, Postback, promises
from events.models import TRACKED_FIELDS, Action, ActionEvent, Brand, Delivery, EventSource, Outcome, sql

from . import rules


@dataclass
class Result:
    outcome: str
    event: ActionEvent


# campaign_id -> (brand id, name) as last read or written by this process. Brands are few and
# change rarely; a new action needs its brand's id, and this saves a query per new action. The
# action's INSERT checks that the brand is still there under that id and campaign.
_brands: dict[str, tuple[int, str]] = {}


def forget_cached() -> None:
    _brands.clear()


def campaign_of(postback: Postback) -> str:
    return postback["campaign_id"] or Brand.UNKNOWN


def brand_id_for(postback: Postback) -> int:
    campaign_id = campaign_of(postback)
    name = postback["campaign_name"]
    cached = _brands.get(campaign_id)
    if cached is not None and (not name or cached[1] == name):
        return cached[0]
    brand, created = Brand.objects.get_or_create(campaign_id=campaign_id, defaults={"name": name or ""})
    if not created and name and brand.name != name:
        brand.name = name
        brand.save(update_fields=["name"])
    _brands[campaign_id] = (brand.pk, brand.name)
    return brand.pk


def apply(
    postback: Postback,
    *,
    received_at: datetime,
    delivery: Delivery | None = None,
    source: str = EventSource.POSTBACK,
) -> Result:
    """Record one change in its action's history. Call inside transaction.atomic()."""
    fingerprint = postback.fingerprint()
    action = sql.get(Action, "action_id", postback.action_id, lock=True)

    existing = sql.get(ActionEvent, "fingerprint", fingerprint) if action else None
    if existing is not None:
        return _duplicate(existing, delivery)

    created = action is None
    action, event = _change(postback, action, fingerprint, received_at, delivery, source)
    if created and not sql.insert_action_if_brand_unchanged(action, campaign_of(postback)):
        # Another transaction created this action first (start again under its row lock), or the
        # brand remembered was deleted since (start again from the database).
        forget_cached()
        return apply(postback, received_at=received_at, delivery=delivery, source=source)
    if not created:
        sql.update(action)
    event.action = action  # now with its primary key
    sql.insert(event)
    return Result(Outcome.APPLIED, event)


def _duplicate(existing: ActionEvent, delivery: Delivery | None) -> Result:
    if delivery is not None and existing.delivery_id == delivery.pk:
        return Result(Outcome.APPLIED, existing)  # a replay of the delivery that created it
    if delivery is not None and delivery.event_id == existing.pk:
        return Result(Outcome.DUPLICATE, existing)  # a replay of a duplicate: counted once already
    ActionEvent.objects.filter(pk=existing.pk).update(duplicate_count=F("duplicate_count") + 1)
    return Result(Outcome.DUPLICATE, existing)


def create(
    postback: Postback, *, received_at: datetime, delivery: Delivery, outcome_fields: list[str]
) -> Result | None:
    """The first postback of an action not stored yet, in one statement, without a transaction.

    The action, its first event and the delivery's outcome (`outcome_fields`, as set on `delivery`,
    and its event) are written together, if the action is still unknown and its brand unchanged
    when the statement runs, and nothing else is to be done for it: no alert (it is not alert-late)
    and no change reported by impact.com's API waiting for it. Otherwise nothing is written and
    None comes back: the caller then runs apply() in a transaction, which decides the same way
    (through the same rules). One statement instead of a transaction of six: most postbacks are an
    action's first. PostgreSQL only (SQLite has no INSERT in a WITH clause).
    """
    action, event = _change(postback, None, postback.fingerprint(), received_at, delivery, EventSource.POSTBACK)
    if promises.is_alert_late(event.delay_seconds):
        return None
    if not sql.create_first_postback(action, event, delivery, outcome_fields, campaign_of(postback)):
        return None
    return Result(Outcome.APPLIED, event)


def can_create() -> bool:
    return connection.vendor == "postgresql"


def _change(
    postback: Postback,
    action: Action | None,
    fingerprint: str,
    received_at: datetime,
    delivery: Delivery | None,
    source: str,
) -> tuple[Action, ActionEvent]:
    """The action as this change leaves it (a new one if `action` is None) and the event recording
    it; nothing is written."""
    kind = rules.derive_kind(postback, action)
    changed_at = rules.changed_at_of(postback, kind)
    created = action is None
    if created:
        action = Action(
            action_id=postback.action_id,
            brand_id=brand_id_for(postback),
            state=kind,
            first_received_at=received_at,
            last_received_at=received_at,
        )
    from_state = "" if created else action.state
    flags = rules.decide(action, kind, changed_at, fingerprint, created)
    to_state = flags.pop("to_state")
    before = {name: getattr(action, name) for name in TRACKED_FIELDS}
    proposed = {name: postback[name] for name in TRACKED_FIELDS if postback[name] is not None}
    _take_values(action, before, proposed, flags["applied"], to_state, kind, changed_at, fingerprint)
    delta_amount, delta_payout = rules.deltas(postback, before, flags["applied"], created)

    action.state = to_state
    action.tracked_seen = action.tracked_seen or kind == Lifecycle.TRACKED
    action.event_count += 1
    action.last_received_at = max(action.last_received_at, received_at)
    event = ActionEvent(
        action=action,
        brand_id=action.brand_id,
        seq=action.event_count,
        kind=kind,
        from_state=from_state,
        to_state=to_state,
        changes=rules.diff(before, proposed, created),
        status=postback["status"] or "",
        amount=postback["amount"],
        payout=postback["payout"],
        delta_amount=delta_amount,
        delta_payout=delta_payout,
        currency=postback["currency"] or action.currency,
        changed_at=changed_at,
        received_at=received_at,
        delay_seconds=rules.delay_seconds(received_at, changed_at),
        source=source,
        fingerprint=fingerprint,
        extra=postback.extra,
        delivery=delivery,
        **flags,
    )
    return action, event


def _take_values(action: Action, before: dict, proposed: dict, applied: bool, to_state, kind, changed_at, fingerprint):
    """Set the action's values from the change: all of them when it applies; otherwise only what the
    action does not know yet, and the money a reversal that did not carry it leaves to this change."""
    if applied:
        for name, value in proposed.items():
            setattr(action, name, value)
        action.money_changed_at = changed_at
        action.money_fingerprint = fingerprint
        return
    for name, value in proposed.items():
        if before[name] in (None, ""):
            setattr(action, name, value)
    if to_state == Lifecycle.REVERSED and kind != Lifecycle.REVERSED:
        for name in _money_the_reversal_left(action, proposed, kind, changed_at, fingerprint):
            setattr(action, name, proposed[name])


def _money_the_reversal_left(action: Action, proposed: dict, kind: str, changed_at, fingerprint: str) -> list[str]:
    """Money fields a reversal did not carry take the newest other change's values, whatever the arrival order.

    (A reversal without Amount must not leave the amount of whichever modification happened to arrive before it.)
    """
    names = [name for name in ("amount", "payout") if proposed.get(name) is not None]
    reversal = action.events.filter(kind=Lifecycle.REVERSED, applied=True).order_by("-seq").first()
    if not names or reversal is None:
        return []
    others = list(
        action.events.exclude(kind=Lifecycle.REVERSED)
        .exclude(fingerprint=fingerprint)
        .only("kind", "changed_at", "fingerprint", "amount", "payout")
    )
    rank = rules.rank(kind, changed_at, fingerprint)
    return [
        name
        for name in names
        if getattr(reversal, name) is None
        and all(rank > rules.rank(e.kind, e.changed_at, e.fingerprint) for e in others if getattr(e, name) is not None)
    ]
