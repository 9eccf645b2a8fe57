"""Reconciliation with impact.com's API: read ActionUpdates and Actions within the request budget,
store the changes (`ApiChange`) and match them with the postbacks already received.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from events import impact
from events.common.times import format_moment
from events.impact import Lifecycle, api
from events.lifecycle import rules
from events.models import ApiChange, ImpactAccount

from .missing import match_stored_changes, record_values

# Reconciliation re-reads this much before its cursor: the API may list a change late.
RECONCILE_OVERLAP = timedelta(minutes=30)
MAX_API_WINDOW = timedelta(days=45)  # impact.com: StartDate and EndDate at most 45 days apart


@dataclass
class ReconcileReport:
    fetched: int = 0
    stored: int = 0
    matched: int = 0
    requests: int = 0
    window: tuple[datetime, datetime] | None = None
    error: str = ""
    budget: str = ""

    def __str__(self) -> str:
        start, end = self.window or (None, None)
        text = (
            f"read {self.fetched} changes from {format_moment(start)} to {format_moment(end)} "
            f"in {self.requests} requests; "
            f"{self.stored} new, {self.matched} of them already answered by a postback. Budget: {self.budget}"
        )
        return f"{text}. Stopped: {self.error}" if self.error else text


def _record_value(record: dict, name: str) -> str:
    value = record.get(name)
    return "" if value is None else str(value).strip()


def _api_date(record: dict, name: str) -> datetime | None:
    text = _record_value(record, name)
    if not text:
        return None
    try:
        return impact.parse_date(text, name)
    except impact.InvalidPayload:
        return None


def change_from_update(record: dict) -> ApiChange | None:
    """An ActionUpdates record: reversed when its State is a reversal (REVERSED, REJECTED...), tracked
    when it is the update that created the action, modified otherwise."""
    changed_at = _api_date(record, "UpdateDate")
    action_id = _record_value(record, "ActionId") or _record_value(record, "Id")
    if changed_at is None or not action_id:
        return None
    state = _record_value(record, "State").upper()
    if impact.status_group(state) == "reversed":
        kind = Lifecycle.REVERSED
    elif _creates(record, changed_at):
        kind = Lifecycle.TRACKED
    else:
        kind = Lifecycle.MODIFIED
    return _api_change(record, action_id, kind, state, changed_at)


def _creates(record: dict, changed_at: datetime) -> bool:
    """Is this the update that created the action? It carries the whole amount and payout as its deltas
    (a change from nothing, as postbacks' rules read them), and is no later than a CreationDate it has."""
    created = _api_date(record, "CreationDate")
    if created is not None and changed_at - created > rules.SAME_TIME:
        return False
    return rules.from_nothing(impact.Postback(fields=record_values(record, "")))


def change_from_action(record: dict) -> ApiChange | None:
    """An Actions record: the action was tracked at its CreationDate."""
    changed_at = _api_date(record, "CreationDate")
    action_id = _record_value(record, "Id") or _record_value(record, "ActionId")
    if changed_at is None or not action_id:
        return None
    return _api_change(record, action_id, Lifecycle.TRACKED, _record_value(record, "State").upper(), changed_at)


def _api_change(record: dict, action_id: str, kind: str, state: str, changed_at: datetime) -> ApiChange:
    return ApiChange(
        action_id=action_id[:255],
        campaign_id=_record_value(record, "CampaignId")[:255],
        campaign_name=_record_value(record, "CampaignName")[:255],
        kind=kind,
        state=state[:40],
        changed_at=changed_at,
        payload={k: v for k, v in record.items() if isinstance(v, str | int | float | type(None))},
    )


def reconcile(account: ImpactAccount, client: api.ImpactClient, now: datetime | None = None) -> ReconcileReport:
    """Read ActionUpdates and Actions changed since the cursor, store them, match them with postbacks."""
    now = now or timezone.now()
    lookback = now - timedelta(hours=settings.RECONCILE_LOOKBACK_HOURS)
    start = max(account.synced_through or lookback, now - MAX_API_WINDOW)
    report = ReconcileReport(window=(start, now))
    params = {"StartDate": api.api_time(start), "EndDate": api.api_time(now)}
    updates: list[ApiChange] = []
    tracked: list[ApiChange] = []
    complete = False
    try:
        for record in client.records("ActionUpdates", params):
            change = change_from_update(record)
            if change is not None:
                updates.append(change)
        for record in client.records("Actions", params):
            change = change_from_action(record)
            if change is not None and change.changed_at >= start - RECONCILE_OVERLAP:
                tracked.append(change)
        complete = True
    except api.ApiError as exc:
        report.error = str(exc)
        if isinstance(exc, api.RateLimited):
            account.paused_until = now + timedelta(seconds=exc.retry_after)
    # The Actions records first: an action's tracking keeps its CreationDate when its creating update
    # is listed too.
    changes = tracked + updates
    report.fetched = len(changes)
    report.requests = client.requests_made
    with transaction.atomic():
        new, seen = _new_changes(changes)
        for change in new:
            change.account = account
            change.fetched_at = now
        ApiChange.objects.bulk_create(new, ignore_conflicts=True, batch_size=1000)
        report.stored = len(new)
        stored = [
            c
            for c in ApiChange.objects.filter(action_id__in={c.action_id for c in new}, postback_event=None)
            if (c.action_id, c.kind, c.changed_at) in seen
        ]
        report.matched = len(match_stored_changes(stored))
        account.last_reconciled_at = now
        if complete:
            account.synced_through = max(now - RECONCILE_OVERLAP, account.synced_through or start)
        report.budget = client.budget.describe(client.rate_remaining)
        account.last_result = str(report)
        account.last_error = report.error
        account.save(
            update_fields=["last_reconciled_at", "synced_through", "last_result", "last_error", "paused_until"]
        )
    return report


def _new_changes(changes: list[ApiChange]) -> tuple[list[ApiChange], set[tuple]]:
    """The changes not stored yet, and their keys: one per (action, kind, time), and one tracking per
    action (the Actions record and the creating update are one change)."""
    ids = {c.action_id for c in changes}
    known = (
        set(ApiChange.objects.filter(action_id__in=ids).values_list("action_id", "kind", "changed_at"))
        if ids
        else set()
    )
    tracked = {action_id for action_id, kind, _ in known if kind == Lifecycle.TRACKED}
    new, seen = [], set()
    for change in changes:
        key = (change.action_id, change.kind, change.changed_at)
        if key in known or key in seen or (change.kind == Lifecycle.TRACKED and change.action_id in tracked):
            continue
        seen.add(key)
        if change.kind == Lifecycle.TRACKED:
            tracked.add(change.action_id)
        new.append(change)
    return new, seen


def reconcile_due(account: ImpactAccount, now: datetime) -> bool:
    if account.paused_until and account.paused_until > now:
        return False
    every = timedelta(minutes=settings.RECONCILE_EVERY_MINUTES)
    return account.last_reconciled_at is None or account.last_reconciled_at <= now - every


def client_for(account: ImpactAccount, **kwargs) -> api.ImpactClient:
    return api.ImpactClient(
        account.account_sid,
        account.auth_token,
        base_url=settings.IMPACT_API_BASE_URL,
        budget=AccountBudget(account, settings.IMPACT_API_REQUESTS_PER_HOUR, kwargs.pop("clock", timezone.now)),
        timeout=settings.IMPACT_API_TIMEOUT,
        allow_http=settings.IMPACT_API_ALLOW_HTTP,
        **kwargs,
    )


class AccountBudget(api.Budget):
    """At most `limit` requests per clock hour for the account, counted in the database, so every
    watcher and every `reconcile_impact` run share it (taken with a guarded update)."""

    def __init__(self, account: ImpactAccount, limit: int, clock: Callable[[], datetime] = timezone.now):
        self.account = account
        self.limit = limit
        self.clock = clock

    def _hour(self) -> datetime:
        return self.clock().replace(minute=0, second=0, microsecond=0)

    def take(self) -> bool:
        hour = self._hour()
        accounts = ImpactAccount.objects.filter(pk=self.account.pk)
        if accounts.filter(Q(budget_hour__lt=hour) | Q(budget_hour=None)).update(budget_hour=hour, budget_used=1):
            return True
        within = accounts.filter(budget_hour=hour, budget_used__lt=self.limit)
        return bool(within.update(budget_used=F("budget_used") + 1))

    def used(self) -> int:
        row = ImpactAccount.objects.filter(pk=self.account.pk).values_list("budget_hour", "budget_used").first()
        return row[1] if row and row[0] == self._hour() else 0

    def describe(self, rate_remaining: int | None = None) -> str:
        reset = self._hour() + timedelta(hours=1)
        text = f"{self.used()} of {self.limit} requests used this hour (resets {reset:%H:%M} UTC)"
        if rate_remaining is not None:
            ImpactAccount.objects.filter(pk=self.account.pk).update(rate_remaining=rate_remaining)
            text += f"; impact.com says {rate_remaining} remaining"
        return text
