"""The lifecycle rules, pure: no queries, nothing written. `apply` runs them against the database.

- kind: an explicit EventType wins; a reversal Status (REVERSED, REJECTED, DECLINED:
  `impact.status_group`) is *reversed*; for an action not tracked yet, deltas
  equal to the whole values (a change from nothing: impact.com's deltas are the
  change since the previous update, and the update that creates an action has
  none before it) are *tracked*, unless an update time later than CreationDate
  says the change came after; a non-zero DeltaAmount/DeltaPayout, or an update
  time later than CreationDate, is *modified*; otherwise the first postback
  seen is *tracked* and later ones are *modified*.
- state: reversed is terminal. A later *modified* is kept as superseded; a
  *tracked* arriving after a later change is kept as out of order.
- money: the change with the latest impact-side time wins whatever the arrival
  order; without a time the latest arrival wins and the event is flagged
  `order_uncertain`. A tracked postback never overrides a later change.
- a postback whose fingerprint is already in the history is a duplicate.
- one change, one history entry. A change is identified by what changed, not by
  the bytes that carried it: its action, its kind and its impact-side time, or
  without a time its values (status, amounts, deltas). A postback that reports a
  change recorded from impact.com's API (backfilled because its postback had not
  come) joins that entry (`reported_change`, `reports`). A kind the postback
  states (EventType, a reversal status) must be the entry's; only a postback
  that says "reversed" reports a reversal.
  - with an update time: the entry at that time (within SAME_TIME), whatever
    values either carries. The entry keeps the API's values: it was counted with
    them, and of two reports of one change that differ, the one that came last
    must not decide. Its `anomaly` says what the postback said otherwise
    (`differences`; not for a tracking, whose API values are the action's of
    today). Another postback at that time (other bytes) is a duplicate of the
    joined entry, its differences noted too, in one order (`noted`): which came
    first changes nothing.
  - without one: the same values wherever both carry them, one at least. For a
    tracking (its time is the CreationDate, which later postbacks carry too): the
    same CreationDate, with deltas equal to the whole values or the same values.
    A postback that could be the tracking (`could_be_tracking`) joins a
    modification by its values only when a tracking was recorded before that
    entry (a backfill records the whole history) and the postback's values differ
    from that tracking's: otherwise they may be the tracking's as much as those
    of a modification that changed nothing, and which it joined would depend on
    the order. An entry already joined is not reported again without a time:
    values alone may be a later change's.
  - of several entries it reports, one still awaiting its postback, then one
    whose values agree, then the earliest.

`action` arguments are read for `state`, `tracked_seen`, `money_changed_at` and
`money_fingerprint` only (an Action, or anything with those attributes).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from events.impact import Lifecycle, Postback, status_group

MAX_DELAY_SECONDS = 2**31 - 1  # ActionEvent.delay_seconds is a 32-bit integer
# Two impact-side times closer than this are the same change (the API and postbacks round differently).
SAME_TIME = timedelta(seconds=1)
# What two reports of one change must agree on, where both carry it.
COMPARED_VALUES = ("status", "amount", "payout", "delta_amount", "delta_payout")


def derive_kind(postback: Postback, action) -> str:
    if postback["event_type"]:
        return postback["event_type"]
    if status_group(postback["status"]) == "reversed":
        return Lifecycle.REVERSED
    first = action is None or not action.tracked_seen
    creation = postback["creation_date"]
    updated_later = bool(postback.changed_at and creation and postback.changed_at > creation)
    if first and not updated_later and from_nothing(postback):
        return Lifecycle.TRACKED  # the update that created the action carries its whole values as deltas
    if any(postback[name] for name in ("delta_amount", "delta_payout")):
        return Lifecycle.MODIFIED
    if updated_later:
        return Lifecycle.MODIFIED  # updated after it was created (e.g. an approval, with zero deltas)
    if first:
        return Lifecycle.TRACKED
    return Lifecycle.MODIFIED


def from_nothing(postback: Postback) -> bool:
    """Does every delta the postback carries equal its whole value, one of them not zero? (A change
    from nothing; a delta without its whole value, or a partial one, is not.)"""
    sent = [
        (postback[delta], postback[whole])
        for delta, whole in (("delta_amount", "amount"), ("delta_payout", "payout"))
        if postback[delta] is not None
    ]
    return any(delta for delta, _ in sent) and all(delta == whole for delta, whole in sent)


def changed_at_of(postback: Postback, kind: str) -> datetime | None:
    """The impact-side time of the change: an update time, or CreationDate for a tracked action."""
    if postback.changed_at:
        return postback.changed_at
    if kind == Lifecycle.TRACKED:
        return postback["creation_date"]
    return None


def delay_seconds(received_at: datetime, changed_at: datetime | None) -> int | None:
    """How long after the change its postback arrived; a date decades away still fits the column."""
    if changed_at is None:
        return None
    delay = int((received_at - changed_at).total_seconds())
    return max(-MAX_DELAY_SECONDS, min(MAX_DELAY_SECONDS, delay))


def json_value(value: Any) -> Any:
    """A field's value as the history's diff keeps it."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def is_newer(action, changed_at: datetime | None, fingerprint: str) -> tuple[bool, bool]:
    """Does a change at `changed_at` override the action's current money? Returns (newer, uncertain)."""
    current = action.money_changed_at
    if changed_at is None or current is None:
        return True, True  # unknown order: the latest arrival wins
    if changed_at != current:
        return changed_at > current, False
    return fingerprint > action.money_fingerprint, False


def rank(kind: str, changed_at: datetime | None, fingerprint: str) -> tuple:
    """Orders the changes of an action as `decide` does: tracking first, then by impact-side time."""
    return (
        kind != Lifecycle.TRACKED,
        changed_at is not None,
        changed_at or datetime.min.replace(tzinfo=UTC),
        fingerprint,
    )


def _flags(**changed) -> dict[str, Any]:
    return {
        "applied": True,
        "superseded": False,
        "out_of_order": False,
        "order_uncertain": False,
        "anomaly": "",
    } | changed


def decide(action, kind: str, changed_at, fingerprint: str, created: bool) -> dict[str, Any]:
    """The state after this change (`to_state`), and how its event is flagged."""
    if created:
        if kind != Lifecycle.TRACKED:
            anomaly = f"first postback seen for this action is {kind}, not tracked"
            return _flags(to_state=kind, out_of_order=True, anomaly=anomaly)
        return _flags(to_state=kind)
    if action.state == Lifecycle.REVERSED:
        return _after_reversal(action, kind, changed_at, fingerprint)
    if kind == Lifecycle.REVERSED:
        return _flags(to_state=Lifecycle.REVERSED)  # terminal: always overrides
    if kind == Lifecycle.TRACKED:
        # The action exists but no tracked postback came yet: this is it, arriving late.
        if action.state != Lifecycle.TRACKED:
            return _flags(to_state=action.state, out_of_order=True, applied=False, superseded=True)
        return _flags(to_state=action.state, out_of_order=True)
    # modified
    if action.state == Lifecycle.TRACKED and (changed_at is None or action.money_changed_at is None):
        return _flags(to_state=Lifecycle.MODIFIED)  # without times, a change after tracking is newer
    newer, uncertain = is_newer(action, changed_at, fingerprint)
    return _flags(
        to_state=Lifecycle.MODIFIED,
        applied=newer,
        superseded=not newer,
        out_of_order=not newer,
        order_uncertain=uncertain,
    )


def _after_reversal(action, kind: str, changed_at, fingerprint: str) -> dict[str, Any]:
    """A reversed action stays reversed; a later reversal may still carry newer money."""
    if kind == Lifecycle.REVERSED:
        newer, uncertain = is_newer(action, changed_at, fingerprint)
        return _flags(
            to_state=Lifecycle.REVERSED,
            applied=newer,
            superseded=not newer,
            order_uncertain=uncertain,
            anomaly="reversed again",
        )
    after_reversal = changed_at and action.money_changed_at and changed_at > action.money_changed_at
    if kind == Lifecycle.MODIFIED and after_reversal:
        anomaly = "modified after the reversal (reversal is terminal)"
        return _flags(to_state=Lifecycle.REVERSED, applied=False, superseded=True, anomaly=anomaly)
    return _flags(to_state=Lifecycle.REVERSED, applied=False, superseded=True, out_of_order=True)


def diff(before: dict[str, Any], proposed: dict[str, Any], created: bool) -> dict[str, list]:
    """{field: [old, new]} for what the change carries that differs (everything, for a new action)."""
    return {
        name: [json_value(None if created else before[name]), json_value(value)]
        for name, value in proposed.items()
        if created or before[name] != value
    }


def deltas(postback: Postback, before: dict[str, Any], applied: bool, created: bool) -> tuple:
    """(delta_amount, delta_payout): as sent, or computed from the previous values when the change
    applied and did not say."""
    delta_amount, delta_payout = postback["delta_amount"], postback["delta_payout"]
    if applied and not created:
        if delta_amount is None and postback["amount"] is not None and before["amount"] is not None:
            delta_amount = postback["amount"] - before["amount"]
        if delta_payout is None and postback["payout"] is not None and before["payout"] is not None:
            delta_payout = postback["payout"] - before["payout"]
    return delta_amount, delta_payout


def money_the_reversal_left(history: list, proposed: dict, kind: str, changed_at, fingerprint: str) -> list[str]:
    """Money fields a reversal did not carry take the newest other change's values, whatever the
    arrival order (a reversal without Amount must not leave the amount of whichever modification
    happened to arrive before it). `history`: the action's events so far."""
    names = [name for name in ("amount", "payout") if proposed.get(name) is not None]
    reversals = [e for e in history if e.kind == Lifecycle.REVERSED and e.applied]
    if not names or not reversals:
        return []
    reversal = max(reversals, key=lambda e: e.seq)
    others = [e for e in history if e.kind != Lifecycle.REVERSED and e.fingerprint != fingerprint]
    mine = rank(kind, changed_at, fingerprint)
    return [
        name
        for name in names
        if getattr(reversal, name) is None
        and all(mine > rank(e.kind, e.changed_at, e.fingerprint) for e in others if getattr(e, name) is not None)
    ]


def stated_kind(postback: Postback) -> str | None:
    """The kind a postback says of itself, whatever arrived before it: an EventType, or a reversal
    Status; None when only the action's state could tell."""
    if postback["event_type"]:
        return postback["event_type"]
    if status_group(postback["status"]) == "reversed":
        return Lifecycle.REVERSED
    return None


def could_be_tracking(postback: Postback) -> bool:
    """Could this postback be its action's tracking, whatever arrived before it? Not when it states
    another kind, carries a delta that is not its whole value (a change from earlier values), or an
    approved status (impact.com tracks an action pending; an approval comes after)."""
    stated = stated_kind(postback)
    if stated is not None:
        return stated == Lifecycle.TRACKED
    if status_group(postback["status"]) == "approved":
        return False
    return from_nothing(postback) or not any(postback[name] for name in ("delta_amount", "delta_payout"))


def _compared(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    return [n for n in COMPARED_VALUES if ours.get(n) not in (None, "") and theirs.get(n) not in (None, "")]


def values_agree(ours: dict[str, Any], theirs: dict[str, Any]) -> bool:
    """Do two reports of a change carry the same values (COMPARED_VALUES) wherever both carry one?
    At least one value must be compared: two reports that share none prove nothing."""
    compared = _compared(ours, theirs)
    return bool(compared) and all(ours[name] == theirs[name] for name in compared)


def values_differ(ours: dict[str, Any], theirs: dict[str, Any]) -> bool:
    """Does a value both carry differ?"""
    return any(ours[name] != theirs[name] for name in _compared(ours, theirs))


def same_time(one: datetime | None, other: datetime | None) -> bool:
    return one is not None and other is not None and abs(one - other) <= SAME_TIME


def _values_of(postback: Postback) -> dict[str, Any]:
    return {name: postback[name] for name in COMPARED_VALUES}


def _entry_values(event) -> dict[str, Any]:
    return {name: getattr(event, name) for name in COMPARED_VALUES}


def needs_history(postback: Postback) -> bool:
    """Does telling which entry `postback` reports need the action's history (`reports`)? Only for a
    postback without a time that could be the tracking."""
    return postback.changed_at is None and could_be_tracking(postback)


def trackings_before(history: list, event) -> list:
    """The action's trackings recorded before `event`: there whatever order the postbacks came in
    after it."""
    return [e for e in history if e.kind == Lifecycle.TRACKED and e.seq < event.seq]


def reports(postback: Postback, event, history: list = ()) -> bool:
    """Does `postback` report the change `event` recorded from impact.com's API? Decided on the
    postback and what the history held when `event` was recorded (never on what came after), so
    arrival order cannot change the answer. With an update time: the same impact-side time
    (UpdateDate; CreationDate for a tracking), whatever the values. Without: the same values; for a
    postback that could be the tracking, a modification's values only when they are not the
    tracking's (`history`: the action's entries, needed only then: `needs_history`). A kind the
    postback states must be the event's."""
    stated = stated_kind(postback)
    if stated is not None and stated != event.kind:
        return False
    if event.kind == Lifecycle.REVERSED and stated is None:
        return False  # a postback that does not say "reversed" is applied as a modification
    if postback.changed_at is not None:
        # The time identifies the change: a value that differs is the postback's word against the API's.
        return same_time(postback.changed_at, event.changed_at)
    values, theirs = _values_of(postback), _entry_values(event)
    agree = values_agree(values, theirs)
    if event.kind == Lifecycle.TRACKED:
        # Its time is the action's CreationDate, which every later postback of the action carries too:
        # the deltas of a creation, or the values, tell the tracking apart.
        return same_time(postback["creation_date"], event.changed_at) and (from_nothing(postback) or agree)
    if event.kind == Lifecycle.MODIFIED and could_be_tracking(postback):
        # Its values may be the tracking's as much as the modification's (one that changed nothing):
        # only a tracking already in the history when the modification was recorded (a backfill
        # records the action's whole history) tells them apart, whatever came after.
        trackings = trackings_before(history, event)
        return agree and bool(trackings) and all(values_differ(values, _entry_values(t)) for t in trackings)
    return agree


def kinds_agree(recorded_kind: str, api_kind: str) -> bool:
    """Can a postback recorded as `recorded_kind`, with an update time, report a change the API lists
    as `api_kind` (as `reports` decides)? A reversal only a reversal: anything else is applied as a
    tracking or a modification, which of the two depending on what came before it."""
    return (recorded_kind == Lifecycle.REVERSED) == (api_kind == Lifecycle.REVERSED)


def is_awaiting(event) -> bool:
    """Is this entry recorded from the API still waiting for its postback (none joined it yet)?"""
    return event.postback_fingerprint is None


def reported_change(postback: Postback, recorded: list, history: list = ()) -> Any:
    """Of the action's entries recorded from impact.com's API (`recorded`: awaiting their postback or
    joined by one), the one `postback` reports, or None. One still awaiting first, then one whose
    values agree, then the earliest. An entry another postback joined is reported only by a postback
    with an update time (the same change sent twice): without one a postback is known by its values
    alone, which a later change can share."""
    candidates = [
        event
        for event in recorded
        if (is_awaiting(event) or postback.changed_at is not None) and reports(postback, event, history)
    ]
    if not candidates:
        return None
    values = _values_of(postback)
    return min(
        candidates,
        key=lambda e: (
            not is_awaiting(e),
            not values_agree(values, _entry_values(e)),
            e.changed_at or datetime.max.replace(tzinfo=UTC),
            e.seq,
        ),
    )


# How an entry's anomaly starts when a postback of its change said other values than the API.
DIFFERS = "postback differs from impact.com's API: "
VALUE_NAMES = {
    "status": "status",
    "amount": "amount",
    "payout": "payout",
    "delta_amount": "amount delta",
    "delta_payout": "payout delta",
}


def _shown(value: Any) -> str:
    if isinstance(value, Decimal):
        value = value.normalize()
        return format(value if value.as_tuple().exponent <= -2 else value.quantize(Decimal("0.01")), "f")
    return str(value)


def differences(postback: Postback, event) -> str:
    """What `postback` says of the change `event` recorded from the API that the API did not, as
    "postback differs from impact.com's API: amount 10.00 → 10.01"; "" when nothing differs. Not
    for a tracking: the API's Actions record carries the action's values of today, not the tracking's."""
    if event.kind == Lifecycle.TRACKED:
        return ""
    values, theirs = _values_of(postback), _entry_values(event)
    differ = [name for name in _compared(values, theirs) if values[name] != theirs[name]]
    if not differ:
        return ""
    return DIFFERS + ", ".join(f"{VALUE_NAMES[n]} {_shown(theirs[n])} → {_shown(values[n])}" for n in differ)


def noted(anomaly: str, note: str, max_length: int = 255) -> str:
    """`anomaly` with `note` (`differences`) added once. The notes of several postbacks of one change
    come in one order whatever order the postbacks came in, after the anomaly the entry had."""
    parts = [part for part in anomaly.split("; ") if part]
    if not note or note in parts:
        return anomaly
    own = [part for part in parts if not part.startswith(DIFFERS)]
    notes = sorted([part for part in parts if part.startswith(DIFFERS)] + [note])
    return "; ".join(own + notes)[:max_length]
