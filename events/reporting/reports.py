"""The reports' tables kept true: one ActionReport row per action, and StatusTotal, its actions and
payout per brand, currency, status group and locking day.

`refresh(action ids)` runs inside the processor's batch transaction, after the lifecycle wrote the
batch: it rewrites the batch's ActionReport rows (two reads and one upsert) and adds the difference
between their old and new keys to StatusTotal (one upsert). So the pages read bounded rows: the
totals of a few keys, or one index range of reports.

StatusTotal is counted in the display zone (its locking days are that zone's days). It is counted
from ActionReport on first need (`ensure_totals`) and dropped by `forget()`, which the rare bulk
writers call (admin deletions, the demo's backdating, removing the setup page's test action), and
when the display zone changes. Race: `refresh()` holds a shared advisory lock, counting and
dropping the exclusive one, both to the end of their transaction; so no batch adds its changes to
totals that are being counted without them.

"Locked" is not stored anywhere: it is a locking date in the past, compared with now when a page
is read.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import models, transaction
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from events.common.times import local_day
from events.impact import Lifecycle, status_group
from events.models import NO_LOCKING_DAY, Action, ActionEvent, ActionReport, ReportZone, StatusGroup, StatusTotal, sql

LOCK_KEY = zlib.crc32(b"events.reports")
BACKFILL_CHUNK = 5000
# What refresh() rewrites on a report already there.
REPORT_FIELDS = (
    "brand", "currency", "group", "reversed", "locking_date", "tracked_at", "payout", "gained", "changed", "lost",
    "sub_id1", "sub_id2", "sub_id3", "tracker", "promo_code", "referring_type",
)  # fmt: skip
ACTION_FIELDS = (
    "id", "brand_id", "currency", "status", "state", "locking_date", "first_received_at", "payout", "sub_id1",
    "sub_id2", "sub_id3", "action_tracker_id", "promo_code", "referring_type",
)  # fmt: skip


def zone() -> str:
    return settings.DISPLAY_TIME_ZONE


# --- Per action --------------------------------------------------------------------------------


def event_money() -> dict:
    """The sums of an action's events as the overview counts them: gained by its tracked postback,
    changed by its applied modifications, lost (negative) by its applied reversal."""
    return {
        "gained": models.Sum("payout", filter=models.Q(kind=Lifecycle.TRACKED)),
        "changed": models.Sum("delta_payout", filter=models.Q(kind=Lifecycle.MODIFIED, applied=True)),
        "lost": models.Sum("delta_payout", filter=models.Q(kind=Lifecycle.REVERSED, applied=True)),
    }


def group_of(status: str, state: str) -> str:
    """The status group an action's report carries: reversed when its state or its Status says so."""
    group = status_group(status) or StatusGroup.OTHER
    return StatusGroup.REVERSED if state == Lifecycle.REVERSED else group


def build_reports(action_ids: Iterable[int], action_model=Action, event_model=ActionEvent, report_model=ActionReport):
    """Unsaved reports of these actions, from the actions and their events (two queries). The models
    are parameters so the migration that fills the table can pass its historical ones."""
    ids = list(action_ids)
    money = {
        row["action_id"]: row
        for row in event_model.objects.filter(action_id__in=ids)
        .order_by()
        .values("action_id")
        .annotate(**event_money())
    }
    reports = []
    for a in action_model.objects.filter(pk__in=ids).order_by().values(*ACTION_FIELDS):
        sums = money.get(a["id"], {})
        gained, changed, lost = (sums.get(name) or Decimal(0) for name in ("gained", "changed", "lost"))
        group = group_of(a["status"], a["state"])
        reversed_ = group == StatusGroup.REVERSED
        reports.append(
            report_model(
                action_id=a["id"],
                brand_id=a["brand_id"],
                currency=a["currency"],
                group=group,
                reversed=reversed_,
                locking_date=a["locking_date"],
                tracked_at=a["first_received_at"],
                # At stake: what it pays now, or for a reversed action what the reversal took back.
                payout=-lost if reversed_ and lost else a["payout"],
                gained=gained,
                changed=changed,
                lost=lost,
                sub_id1=a["sub_id1"],
                sub_id2=a["sub_id2"],
                sub_id3=a["sub_id3"],
                tracker=a["action_tracker_id"],
                promo_code=a["promo_code"],
                referring_type=a["referring_type"],
            )
        )
    return reports


def save_reports(reports: list, report_model=ActionReport) -> None:
    """Insert the reports, or overwrite those of actions that have one (one statement)."""
    report_model.objects.bulk_create(
        reports, update_conflicts=True, unique_fields=["action"], update_fields=list(REPORT_FIELDS), batch_size=1000
    )


def backfill(action_model=Action, event_model=ActionEvent, report_model=ActionReport) -> int:
    """Reports of every action, BACKFILL_CHUNK actions at a time (the migration that adds the table)."""
    done = 0
    last = 0
    while True:
        ids = list(
            action_model.objects.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:BACKFILL_CHUNK]
        )
        if not ids:
            return done
        save_reports(build_reports(ids, action_model, event_model, report_model), report_model)
        done += len(ids)
        last = ids[-1]


def refresh(action_ids: Iterable[int]) -> None:
    """Rewrite the reports of these actions and move their totals: call inside the transaction
    that changed them (the processor's batch), after the changes are written."""
    ids = sorted(set(action_ids))
    if not ids:
        return
    sql.advisory_xact_lock_shared(LOCK_KEY)
    counted_in = ReportZone.objects.values_list("zone", flat=True).first()
    old = [_key(r, counted_in) for r in ActionReport.objects.filter(action_id__in=ids)] if counted_in else []
    new = build_reports(ids)
    save_reports(new)
    if counted_in:
        sql.add_status_totals(_deltas(old, [_key(r, counted_in) for r in new], counted_in))


def _key(report: ActionReport, in_zone: str) -> tuple:
    """(brand, currency, group, locking day in `in_zone`) and the payout the report adds to it."""
    day = local_day(report.locking_date, ZoneInfo(in_zone)) if report.locking_date else NO_LOCKING_DAY
    return (report.brand_id, report.currency, report.group, day), report.payout or Decimal(0)


def _deltas(old: list[tuple], new: list[tuple], in_zone: str) -> list[tuple]:
    actions: Counter = Counter()
    payout: dict = {}
    for sign, keys in ((-1, old), (1, new)):
        for key, amount in keys:
            actions[key] += sign
            payout[key] = payout.get(key, Decimal(0)) + sign * amount
    return [(in_zone, *key, actions[key], payout[key]) for key in payout if actions[key] or payout[key] != Decimal(0)]


# --- Totals ------------------------------------------------------------------------------------


def ensure_totals(now: datetime | None = None) -> None:
    """Count StatusTotal in the display zone unless it is counted already (one query then)."""
    wanted = zone()
    if ReportZone.objects.filter(zone=wanted).exists():
        return
    with transaction.atomic():
        sql.advisory_xact_lock(LOCK_KEY)
        if not ReportZone.objects.filter(zone=wanted).exists():  # counted while we waited?
            _count_totals(wanted, now or timezone.now())


def _count_totals(in_zone: str, now: datetime) -> None:
    StatusTotal.objects.all().delete()
    ReportZone.objects.all().delete()
    no_day = models.Value(NO_LOCKING_DAY, output_field=models.DateField())
    rows = (
        ActionReport.objects.order_by()
        .annotate(day=Coalesce(TruncDate("locking_date", tzinfo=ZoneInfo(in_zone)), no_day))
        .values("brand_id", "currency", "group", "day")
        .annotate(n=models.Count("id"), total=Coalesce(models.Sum("payout"), Decimal(0), output_field=_decimal()))
    )
    StatusTotal.objects.bulk_create(
        [
            StatusTotal(
                zone=in_zone,
                brand_id=r["brand_id"],
                currency=r["currency"],
                group=r["group"],
                locking_day=r["day"],
                actions=r["n"],
                payout=r["total"],
            )
            for r in rows.iterator(chunk_size=2000)
        ],
        batch_size=1000,
    )
    ReportZone.objects.create(zone=in_zone, counted_at=now)


def _decimal():
    return models.DecimalField(max_digits=24, decimal_places=6)


def forget() -> None:
    """Drop StatusTotal (counted again on the next view): for writers that delete or move actions in bulk."""
    with transaction.atomic():
        sql.advisory_xact_lock(LOCK_KEY)
        StatusTotal.objects.all().delete()
        ReportZone.objects.all().delete()
