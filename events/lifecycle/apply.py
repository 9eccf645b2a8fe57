"""Applying changes: the one place where an action's state changes.

`apply_batch()` applies a batch of changes inside the caller's transaction: the batch's actions
are locked in a fixed order (`select_for_update`, by ActionId, so two processors never deadlock on
them), each action's changes are folded in arrival order through `rules`, then the new actions and
every event are written with `bulk_create` and the changed actions with one upsert. The result is
the one applying the changes one by one gives, whatever the batch boundaries. `apply()` is a batch
of one.

A postback that reports a change already recorded from impact.com's API (an entry backfilled
because its postback had not come) joins that entry instead of writing a second one: the entry
keeps its fingerprint (the tie-break between changes at the same time, so the order the postbacks
come in cannot matter) and its values (the API's: the postback's, where they differ, are noted in
its anomaly), and takes the postback's fingerprint as `postback_fingerprint` (its retries are
duplicates), its delivery, receipt and real delay (`rules.reported_change`). Another postback of
the same change (its kind and update time, other bytes) is a duplicate of the joined entry.

Two processors may both see an action as new: the second one's insert then fails on the unique
ActionId (`IntegrityError`) and its caller runs the batch again, which now finds the action.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import F, Q

from events.impact import Lifecycle, Postback
from events.models import TRACKED_FIELDS, Action, ActionEvent, Brand, Delivery, EventSource, Outcome

from . import rules

# What an UPDATE of a changed action writes: everything a change can move.
ACTION_STATE_FIELDS = (
    *TRACKED_FIELDS,
    "state",
    "tracked_seen",
    "event_count",
    "last_received_at",
    "money_changed_at",
    "money_fingerprint",
)


@dataclass
class Change:
    """One change to apply: a parsed postback (or an API record in postback form) and its receipt."""

    postback: Postback
    received_at: datetime
    delivery: Delivery | None = None
    source: str = EventSource.POSTBACK


@dataclass
class Result:
    """What a change did. `new`: its event was written by this batch (not a duplicate, not a replay of
    the delivery that wrote it), or joined by its first postback; `action`: the action's state and
    values just after it, for forwarding; `moved_from`: a joined entry's receipt time before (the
    backfill's), whose day's figures change too."""

    outcome: str
    event: ActionEvent
    new: bool = False
    action: dict | None = None
    moved_from: datetime | None = None


def campaign_of(postback: Postback) -> str:
    return postback["campaign_id"] or Brand.UNKNOWN


def apply(
    postback: Postback,
    *,
    received_at: datetime,
    delivery: Delivery | None = None,
    source: str = EventSource.POSTBACK,
) -> Result:
    """Record one change in its action's history. Call inside transaction.atomic()."""
    return apply_batch([Change(postback, received_at, delivery, source)])[0]


def apply_batch(changes: list[Change]) -> list[Result]:
    """Record the changes (in arrival order) in their actions' histories; one result per change.
    Call inside transaction.atomic()."""
    brand_ids = _brand_ids(changes)
    action_ids = sorted({change.postback.action_id for change in changes})
    locked = Action.objects.select_for_update().filter(action_id__in=action_ids).order_by("action_id")
    actions = {a.action_id: a for a in locked}
    fingerprints = [change.postback.fingerprint() for change in changes]
    # The changes already recorded, and the batch's entries recorded from the API that a postback may
    # report, joined or not (one query).
    wanted = Q(fingerprint__in=fingerprints) | Q(postback_fingerprint__in=fingerprints)
    if actions and any(change.source == EventSource.POSTBACK for change in changes):
        pks = [a.pk for a in actions.values()]
        wanted |= Q(action__in=pks, **AWAITING) | Q(action__in=pks, **JOINED)
    known = list(ActionEvent.objects.filter(wanted).order_by())  # each term one index probe: no sort
    fold = _Fold(actions, known, brand_ids)
    results = [fold.add(change, fingerprint) for change, fingerprint in zip(changes, fingerprints, strict=True)]
    fold.write()
    return results


def _brand_ids(changes: list[Change]) -> dict[str, int]:
    """{campaign_id: brand id} for the changes' campaigns, creating the new brands and taking the
    names they now carry (in campaign order, so concurrent batches insert in the same order)."""
    names: dict[str, str] = {}
    for change in changes:
        names[campaign_of(change.postback)] = change.postback["campaign_name"] or names.get(
            campaign_of(change.postback), ""
        )
    brands = {b.campaign_id: b for b in Brand.objects.filter(campaign_id__in=names)}
    missing = [Brand(campaign_id=c, name=names[c]) for c in sorted(names) if c not in brands]
    if missing:
        Brand.objects.bulk_create(missing, ignore_conflicts=True)  # a concurrent batch may create one too
        brands = {b.campaign_id: b for b in Brand.objects.filter(campaign_id__in=names)}
    for campaign_id, brand in brands.items():
        if names[campaign_id] and brand.name != names[campaign_id]:
            Brand.objects.filter(pk=brand.pk).update(name=names[campaign_id])
    return {campaign_id: brand.pk for campaign_id, brand in brands.items()}


# An entry recorded from impact.com's API that no postback has reported yet.
AWAITING = {"source": EventSource.API, "delivery": None}
# An entry recorded from impact.com's API that its postback then joined.
JOINED = {"postback_fingerprint__isnull": False}


class _Fold:
    """The batch's actions as its changes leave them, in memory, until `write()`."""

    def __init__(self, actions: dict[str, Action], known: list[ActionEvent], brand_ids: dict[str, int]):
        self.actions = actions
        # By fingerprint (or a joined postback's): stored ones, then this batch's.
        self.events = {e.fingerprint: e for e in known} | {
            e.postback_fingerprint: e for e in known if e.postback_fingerprint
        }
        self.loaded = {e.pk: e for e in known}  # one object per stored entry, whoever read it
        # action pk -> its entries recorded from the API, awaiting their postback or joined by it
        self.recorded: dict[int, list[ActionEvent]] = {}
        for event in known:
            if (event.source == EventSource.API and event.delivery_id is None) or event.postback_fingerprint:
                self.recorded.setdefault(event.action_id, []).append(event)
        self.brand_ids = brand_ids
        self.new_actions: list[Action] = []
        self.changed_actions: dict[str, Action] = {}
        self.new_events: list[ActionEvent] = []
        self.joined: list[ActionEvent] = []  # stored API entries a postback joined
        self.noted: dict[int, ActionEvent] = {}  # joined entries another postback of their change added to
        self.duplicates: Counter[int] = Counter()  # stored event id -> retries seen in this batch
        self._stored_events: dict[str, list[ActionEvent]] = {}

    def add(self, change: Change, fingerprint: str) -> Result:
        existing = self.events.get(fingerprint)
        if existing is not None:
            return self._duplicate(existing, change.delivery)
        postback = change.postback
        action = self.actions.get(postback.action_id)
        created = action is None
        if not created and change.source == EventSource.POSTBACK and action.pk in self.recorded:
            history = self._history(postback.action_id, created) if rules.needs_history(postback) else []
            reported = rules.reported_change(postback, self.recorded[action.pk], history)
            if reported is not None and rules.is_awaiting(reported):
                return self._join(change, action, reported, fingerprint)
            if reported is not None:
                return self._reported_again(change, reported, fingerprint)
        action, event = _change(
            change,
            action,
            fingerprint,
            self.brand_ids[campaign_of(postback)],
            lambda: self._history(postback.action_id, created),
        )
        if created:
            self.actions[action.action_id] = action
            self.new_actions.append(action)
        elif action.pk is not None:
            self.changed_actions[action.action_id] = action
        self.new_events.append(event)
        self.events[fingerprint] = event
        return Result(Outcome.APPLIED, event, new=True, action=_snapshot(action))

    def _join(self, change: Change, action: Action, event: ActionEvent, fingerprint: str) -> Result:
        """The postback of a change recorded from the API: the entry becomes its postback's (its
        delivery, receipt and real delay; its fingerprint as `postback_fingerprint`, so retries are
        duplicates); the action takes what the API did not say. No second entry."""
        moved_from = event.received_at
        event.action = action  # the one the batch holds (read by the hooks after it)
        event.postback_fingerprint = fingerprint
        event.source = EventSource.POSTBACK
        event.delivery = change.delivery
        event.received_at = change.received_at
        event.delay_seconds = rules.delay_seconds(change.received_at, event.changed_at)
        postback = change.postback
        event.anomaly = rules.noted(event.anomaly, rules.differences(postback, event))
        proposed = {name: postback[name] for name in TRACKED_FIELDS if postback[name] is not None}
        _take_unknown(action, {name: getattr(action, name) for name in TRACKED_FIELDS}, proposed)
        action.last_received_at = max(action.last_received_at, change.received_at)
        self.changed_actions[action.action_id] = action
        self.joined.append(event)
        self.events[fingerprint] = event
        return Result(Outcome.APPLIED, event, new=True, action=_snapshot(action), moved_from=moved_from)

    def _reported_again(self, change: Change, event: ActionEvent, fingerprint: str) -> Result:
        """Another postback of the change a postback already joined (its kind and update time, other
        bytes): a duplicate of the entry, whatever values it carries; those that differ from the
        API's are noted, as for the postback that joined."""
        anomaly = rules.noted(event.anomaly, rules.differences(change.postback, event))
        if anomaly != event.anomaly:
            event.anomaly = anomaly
            self.noted[event.pk] = event
        self.events[fingerprint] = event
        return self._duplicate(event, change.delivery)

    def _duplicate(self, existing: ActionEvent, delivery: Delivery | None) -> Result:
        if delivery is not None and existing.pk is not None and existing.delivery_id == delivery.pk:
            return Result(Outcome.APPLIED, existing)  # a replay of the delivery that created it
        if delivery is not None and existing.pk is not None and delivery.event_id == existing.pk:
            return Result(Outcome.DUPLICATE, existing)  # a replay of a duplicate: counted once already
        if existing.pk is None:
            existing.duplicate_count += 1  # written with it
        else:
            self.duplicates[existing.pk] += 1
        return Result(Outcome.DUPLICATE, existing)

    def _history(self, action_id: str, created: bool) -> list[ActionEvent]:
        """The action's events so far: stored ones (read once, when a rule needs them) and this batch's."""
        if action_id not in self._stored_events:
            action = self.actions[action_id]
            stored = [] if created or action.pk is None else list(action.events.all())
            stored = [self.loaded.get(e.pk, e) for e in stored]  # a joined entry as the batch left it
            self._stored_events[action_id] = stored
        batch = [e for e in self.new_events if e.action.action_id == action_id]
        return self._stored_events[action_id] + batch

    def write(self) -> None:
        Action.objects.bulk_create(self.new_actions)
        # The changed actions in one statement: an upsert on their primary keys, each of which is
        # there and locked, so every row takes the UPDATE branch. (One UPDATE per action cost
        # the batch a round trip each; bulk_update's CASE per field and row costs more still.)
        Action.objects.bulk_create(
            list(self.changed_actions.values()),
            update_conflicts=True,
            unique_fields=["id"],
            update_fields=ACTION_STATE_FIELDS,
        )
        for event in self.joined:
            ActionEvent.objects.filter(pk=event.pk).update(**{name: getattr(event, name) for name in JOINED_FIELDS})
        for event in self.noted.values():
            if event not in self.joined:  # written with the fields it was joined with
                ActionEvent.objects.filter(pk=event.pk).update(anomaly=event.anomaly)
        ActionEvent.objects.bulk_create(self.new_events)
        # Retries counted in one UPDATE per number of retries (nearly always one: 1).
        by_retries: dict[int, list[int]] = {}
        for event_id, retries in self.duplicates.items():
            by_retries.setdefault(retries, []).append(event_id)
        for retries, event_ids in by_retries.items():
            ActionEvent.objects.filter(pk__in=event_ids).update(duplicate_count=F("duplicate_count") + retries)


# What a postback joining an API entry changes in it.
JOINED_FIELDS = ("postback_fingerprint", "source", "delivery", "received_at", "delay_seconds", "anomaly")


def _snapshot(action: Action) -> dict:
    return {name: getattr(action, name) for name in (*TRACKED_FIELDS, "state")}


def _change(
    change: Change,
    action: Action | None,
    fingerprint: str,
    brand_id: int,
    history: Callable[[], list[ActionEvent]],
) -> tuple[Action, ActionEvent]:
    """The action as this change leaves it (a new one if `action` is None) and the event recording
    it; nothing is written. `history()` gives the action's events so far, for the rare rule that
    needs them."""
    postback, received_at = change.postback, change.received_at
    kind = rules.derive_kind(postback, action)
    changed_at = rules.changed_at_of(postback, kind)
    created = action is None
    if created:
        action = Action(action_id=postback.action_id, brand_id=brand_id, state=kind)
        action.first_received_at = action.last_received_at = received_at
    from_state = "" if created else action.state
    flags = rules.decide(action, kind, changed_at, fingerprint, created)
    to_state = flags.pop("to_state")
    before = {name: getattr(action, name) for name in TRACKED_FIELDS}
    proposed = {name: postback[name] for name in TRACKED_FIELDS if postback[name] is not None}
    if flags["applied"]:
        _take_all(action, proposed, changed_at, fingerprint)
    else:
        _take_unknown(action, before, proposed)
        if to_state == Lifecycle.REVERSED and kind != Lifecycle.REVERSED:
            for name in rules.money_the_reversal_left(history(), proposed, kind, changed_at, fingerprint):
                setattr(action, name, proposed[name])
    delta_amount, delta_payout = rules.deltas(postback, before, flags["applied"], created)

    _advance(action, to_state, kind, received_at)
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
        source=change.source,
        fingerprint=fingerprint,
        extra=postback.extra,
        delivery=change.delivery,
        **flags,
    )
    return action, event


def _advance(action: Action, to_state: str, kind: str, received_at: datetime) -> None:
    """What every change does to its action: its state, and one more event."""
    action.state = to_state
    action.tracked_seen = action.tracked_seen or kind == Lifecycle.TRACKED
    action.event_count += 1
    action.last_received_at = max(action.last_received_at, received_at)


def _take_all(action: Action, proposed: dict, changed_at, fingerprint: str) -> None:
    """The change applies: its values become the action's."""
    for name, value in proposed.items():
        setattr(action, name, value)
    action.money_changed_at = changed_at
    action.money_fingerprint = fingerprint


def _take_unknown(action: Action, before: dict, proposed: dict) -> None:
    """A superseded change still fills in what the action does not know yet."""
    for name, value in proposed.items():
        if before[name] in (None, ""):
            setattr(action, name, value)
