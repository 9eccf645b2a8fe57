"""The one place where an action's state changes.

`apply()` runs inside a transaction with the action row locked
(`select_for_update`), so two postbacks for the same action are applied one
after the other whatever the number of workers. `create()` writes an action's
first postback in one statement instead (no row to lock yet: the unique ActionId
orders concurrent first postbacks, and any but the first go through `apply()`).
Both decide through `_change()`. Rules (README, "Lifecycle"):

- kind: an explicit EventType wins; Status=REVERSED is *reversed*; a non-zero
  DeltaAmount/DeltaPayout, or an update time later than CreationDate, is
  *modified*; otherwise the first postback seen is *tracked* and later ones
  are *modified*.
- state: reversed is terminal. A later *modified* is kept as superseded; a
  *tracked* arriving after a later change is kept as out of order.
- money: the change with the latest impact-side time wins whatever the arrival
  order; without a time the latest arrival wins and the event is flagged
  `order_uncertain`. A tracked postback never overrides a later change.
- a postback whose fingerprint is already in the history is a duplicate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import F

from . import rollups, rows
from .impact import Postback
from .models import (
    TRACKED_FIELDS,
    Action,
    ActionEvent,
    ActionState,
    Brand,
    Delivery,
    EventKind,
    EventSource,
    Outcome,
)

MAX_DELAY_SECONDS = 2**31 - 1  # ActionEvent.delay_seconds is a 32-bit integer


@dataclass
class Result:
    outcome: str
    event: ActionEvent


def derive_kind(postback: Postback, action: Action | None) -> str:
    if postback["event_type"]:
        return postback["event_type"]
    if postback["status"] == "REVERSED":
        return EventKind.REVERSED
    if any(postback[name] for name in ("delta_amount", "delta_payout")):
        return EventKind.MODIFIED
    if postback.changed_at and postback["creation_date"] and postback.changed_at > postback["creation_date"]:
        return EventKind.MODIFIED  # updated after it was created (e.g. an approval, with zero deltas)
    if action is None or not action.tracked_seen:
        return EventKind.TRACKED
    return EventKind.MODIFIED


def changed_at_of(postback: Postback, kind: str) -> datetime | None:
    """The impact-side time of the change: an update time, or CreationDate for a tracked action."""
    if postback.changed_at:
        return postback.changed_at
    if kind == EventKind.TRACKED:
        return postback["creation_date"]
    return None


def _json(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _is_newer(action: Action, changed_at: datetime | None, fingerprint: str) -> tuple[bool, bool]:
    """Does a change at `changed_at` override the action's current money? Returns (newer, uncertain)."""
    current = action.money_changed_at
    if changed_at is None or current is None:
        return True, True  # unknown order: the latest arrival wins
    if changed_at != current:
        return changed_at > current, False
    return fingerprint > action.money_fingerprint, False


# campaign_id -> (brand id, name) as last read or written by this process. Brands are few and
# change rarely; a new action needs its brand's id, and this saves a query per new action. The
# action's INSERT checks that the brand is still there under that id and campaign (an admin may
# delete a brand that has no actions, and SQLite may give its id to another).
_brands: dict[str, tuple[int, str]] = {}


def forget_cached() -> None:
    _brands.clear()


def brand_id_for(postback: Postback) -> int:
    campaign_id = postback["campaign_id"] or Brand.UNKNOWN
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


def _brand_still_there(action: Action, postback: Postback) -> tuple[str, list]:
    """SQL true while the brand remembered for the action's campaign still has that id."""
    sql = f"EXISTS (SELECT 1 FROM {Brand._meta.db_table} WHERE id = %s AND campaign_id = %s)"  # noqa: S608
    return sql, [action.brand_id, postback["campaign_id"] or Brand.UNKNOWN]


def _lock_action(action_id: str) -> Action | None:
    return rows.get(Action, "action_id", action_id, lock=True)


def apply(
    postback: Postback,
    *,
    received_at: datetime,
    delivery: Delivery | None = None,
    source: str = EventSource.POSTBACK,
) -> Result:
    """Record one change in its action's history. Call inside transaction.atomic()."""
    fingerprint = postback.fingerprint()
    action = _lock_action(postback.action_id)

    existing = rows.get(ActionEvent, "fingerprint", fingerprint) if action else None
    if existing is not None:
        if delivery is not None and existing.delivery_id == delivery.pk:
            return Result(Outcome.APPLIED, existing)  # a replay of the delivery that created it
        if delivery is not None and delivery.event_id == existing.pk:
            return Result(Outcome.DUPLICATE, existing)  # a replay of a duplicate: counted once already
        ActionEvent.objects.filter(pk=existing.pk).update(duplicate_count=F("duplicate_count") + 1)
        return Result(Outcome.DUPLICATE, existing)

    created = action is None
    action, event = _change(postback, action, fingerprint, received_at, delivery, source)
    if created and not rows.insert(action, unique="action_id", where=_brand_still_there(action, postback)):
        # Another transaction created this action first (start again under its row lock), or the
        # brand remembered was deleted since (start again from the database).
        forget_cached()
        return apply(postback, received_at=received_at, delivery=delivery, source=source)
    if not created:
        rows.update(action)
    event.action = action  # now with its primary key
    rows.insert(event)
    rollups.changed(received_at)  # an event received days ago (a replay, a backfill) changes a counted day
    return Result(Outcome.APPLIED, event)


def create(
    postback: Postback,
    *,
    received_at: datetime,
    delivery: Delivery,
    outcome_fields: list[str],
    only_if: Callable[[ActionEvent], tuple[str, list] | None],
) -> Result | None:
    """The first postback of an action not stored yet, in one statement, without a transaction.

    The action, its first event and the delivery's outcome (`outcome_fields`, as set on `delivery`,
    and its event) are written together, if the action is still unknown and its brand unchanged
    when the statement runs, and `only_if(event)` (SQL) holds. Otherwise nothing is written and
    None comes back: the caller then runs apply() in a transaction, which decides the same way
    (this uses its rules, `_change()`). One statement instead of a transaction of six: most
    postbacks are an action's first. PostgreSQL only (SQLite has no INSERT in a WITH clause).
    """
    fingerprint = postback.fingerprint()
    action, event = _change(postback, None, fingerprint, received_at, delivery, EventSource.POSTBACK)
    condition = only_if(event)
    if condition is None:
        return None
    brand_sql, brand_params = _brand_still_there(action, postback)
    where = (f"{brand_sql} AND {condition[0]}", [*brand_params, *condition[1]])
    action_sql, action_params = rows.insert_statement(action, unique="action_id", where=where)
    event_sql, event_params = rows.insert_statement(event, computed={"action": "new_action.id"}, source="new_action")
    delivery_sql, delivery_params = rows.update_statement(
        delivery, [*outcome_fields, "event"], computed={"event": "new_event.id"}, source="new_event"
    )
    sql = (  # statements built by events.rows, every value a parameter
        f"WITH new_action AS ({action_sql}), new_event AS ({event_sql}), outcome AS ({delivery_sql}) "  # noqa: S608
        "SELECT new_action.id, new_event.id FROM new_action, new_event"
    )
    with rows.cursor() as cursor:
        cursor.execute(sql, [*action_params, *event_params, *delivery_params])
        row = cursor.fetchone()
    if row is None:
        return None
    rows.saved(action, row[0])
    event.action = action
    rows.saved(event, row[1])
    delivery.event = event
    rollups.changed(received_at)
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
    kind = derive_kind(postback, action)
    changed_at = changed_at_of(postback, kind)
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
    flags = _decide(action, kind, changed_at, fingerprint, created)
    to_state = flags.pop("to_state")

    before = {name: getattr(action, name) for name in TRACKED_FIELDS}
    proposed = {name: postback[name] for name in TRACKED_FIELDS if postback[name] is not None}
    if flags["applied"]:
        for name, value in proposed.items():
            setattr(action, name, value)
        action.money_changed_at = changed_at
        action.money_fingerprint = fingerprint
    else:
        # A superseded change still fills in what the action does not know yet.
        for name, value in proposed.items():
            if before[name] in (None, ""):
                setattr(action, name, value)
        if to_state == ActionState.REVERSED and kind != EventKind.REVERSED:
            for name in _money_the_reversal_left(action, proposed, kind, changed_at, fingerprint):
                setattr(action, name, proposed[name])
    changes = {
        name: [_json(None if created else before[name]), _json(value)]
        for name, value in proposed.items()
        if created or before[name] != value
    }

    delta_amount = postback["delta_amount"]
    delta_payout = postback["delta_payout"]
    if flags["applied"] and not created:
        if delta_amount is None and postback["amount"] is not None and before["amount"] is not None:
            delta_amount = postback["amount"] - before["amount"]
        if delta_payout is None and postback["payout"] is not None and before["payout"] is not None:
            delta_payout = postback["payout"] - before["payout"]

    delay = None
    if changed_at is not None:
        delay = int((received_at - changed_at).total_seconds())
        delay = max(-MAX_DELAY_SECONDS, min(MAX_DELAY_SECONDS, delay))  # a date decades away fits the column

    action.state = to_state
    action.tracked_seen = action.tracked_seen or kind == EventKind.TRACKED
    action.event_count += 1
    action.last_received_at = max(action.last_received_at, received_at)
    event = ActionEvent(
        action=action,
        brand_id=action.brand_id,
        seq=action.event_count,
        kind=kind,
        from_state=from_state,
        to_state=to_state,
        changes=changes,
        status=postback["status"] or "",
        amount=postback["amount"],
        payout=postback["payout"],
        delta_amount=delta_amount,
        delta_payout=delta_payout,
        currency=postback["currency"] or action.currency,
        changed_at=changed_at,
        received_at=received_at,
        delay_seconds=delay,
        source=source,
        fingerprint=fingerprint,
        extra=postback.extra,
        delivery=delivery,
        **flags,
    )
    return action, event


def _rank(kind: str, changed_at: datetime | None, fingerprint: str) -> tuple:
    """Orders the changes of an action as `_decide` does: tracking first, then by impact-side time."""
    return (
        kind != EventKind.TRACKED,
        changed_at is not None,
        changed_at or datetime.min.replace(tzinfo=UTC),
        fingerprint,
    )


def _money_the_reversal_left(action: Action, proposed: dict, kind: str, changed_at, fingerprint: str) -> list[str]:
    """Money fields a reversal did not carry take the newest other change's values, whatever the arrival order.

    (A reversal without Amount must not leave the amount of whichever modification happened to arrive before it.)
    """
    names = [name for name in ("amount", "payout") if proposed.get(name) is not None]
    reversal = action.events.filter(kind=EventKind.REVERSED, applied=True).order_by("-seq").first()
    if not names or reversal is None:
        return []
    others = list(
        action.events.exclude(kind=EventKind.REVERSED)
        .exclude(fingerprint=fingerprint)
        .only("kind", "changed_at", "fingerprint", "amount", "payout")
    )
    rank = _rank(kind, changed_at, fingerprint)
    return [
        name
        for name in names
        if getattr(reversal, name) is None
        and all(rank > _rank(e.kind, e.changed_at, e.fingerprint) for e in others if getattr(e, name) is not None)
    ]


def _decide(action: Action, kind: str, changed_at, fingerprint: str, created: bool) -> dict[str, Any]:
    """The state after this change, and how the event is flagged."""
    flags = {"applied": True, "superseded": False, "out_of_order": False, "order_uncertain": False, "anomaly": ""}
    if created:
        if kind != EventKind.TRACKED:
            flags["out_of_order"] = True
            flags["anomaly"] = f"first postback seen for this action is {kind}, not tracked"
        flags["to_state"] = kind
        return flags

    state = action.state
    newer, uncertain = _is_newer(action, changed_at, fingerprint)
    if state == ActionState.REVERSED:
        if kind == EventKind.REVERSED:
            flags["applied"] = newer
            flags["order_uncertain"] = uncertain
            flags["superseded"] = not newer
            flags["anomaly"] = "reversed again"
        else:
            flags["applied"] = False
            flags["superseded"] = True
            after_reversal = changed_at and action.money_changed_at and changed_at > action.money_changed_at
            if kind == EventKind.MODIFIED and after_reversal:
                flags["anomaly"] = "modified after the reversal (reversal is terminal)"
            else:
                flags["out_of_order"] = True
        flags["to_state"] = ActionState.REVERSED
        return flags

    if kind == EventKind.REVERSED:
        flags["to_state"] = ActionState.REVERSED  # terminal: always overrides
        return flags

    if kind == EventKind.TRACKED:
        # The action exists but no tracked postback came yet: this is it, arriving late.
        flags["out_of_order"] = True
        flags["to_state"] = state
        if state != ActionState.TRACKED:
            flags["applied"] = False
            flags["superseded"] = True
        return flags

    # modified
    flags["to_state"] = ActionState.MODIFIED
    if state == ActionState.TRACKED and (changed_at is None or action.money_changed_at is None):
        return flags  # without times, a change after tracking is taken as newer than the tracking
    flags["applied"] = newer
    flags["superseded"] = not newer
    flags["out_of_order"] = not newer
    flags["order_uncertain"] = uncertain
    return flags
