"""The reports' tables kept true: one ActionReport row per action, and four totals of them:
- StatusTotal, actions and payout per brand, currency, status group and locking day (money by
  status "as of now" and the locking calendar of one brand);
- DayTotal, the same without the brand, the setup page's test brand left out (across brands);
- TrackedTotal, StatusTotal per day tracked too (money by status of the actions tracked in a period);
- DimensionTotal, per day tracked, brand, currency and value of each dimension of the performance
  page: actions tracked, reversed by now, payout gained, changed and lost.

`refresh(action ids)` runs inside the processor's batch transaction, after the lifecycle wrote the
batch: it rewrites the batch's ActionReport rows (two reads and one upsert), looks up the test
brand, and adds the difference between their old and new keys to each total (one upsert per total;
DimensionTotal's in chunks of sql.TOTAL_CHUNK rows, so at most two for a batch of 500 new actions). So
the pages read bounded rows: the totals of a few keys or of a period's days, or one index range of
reports (what is left of a period at either end: today up to now).

The totals are counted in the display zone (their days are that zone's days). They are counted
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
from events.models import (
    NO_LOCKING_DAY,
    Action,
    ActionEvent,
    ActionReport,
    Brand,
    DayTotal,
    DimensionTotal,
    ReportZone,
    StatusGroup,
    StatusTotal,
    TrackedTotal,
    sql,
)

LOCK_KEY = zlib.crc32(b"events.reports")
BACKFILL_CHUNK = 5000
# The report fields the performance page groups by: DimensionTotal's `dimension`.
DIMENSION_FIELDS = ("sub_id1", "sub_id2", "sub_id3", "tracker", "promo_code", "referring_type")
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
    old = list(ActionReport.objects.filter(action_id__in=ids)) if counted_in else []
    new = build_reports(ids)
    save_reports(new)
    if counted_in:
        tz = ZoneInfo(counted_in)
        old_keys, new_keys = [_key(r, tz) for r in old], [_key(r, tz) for r in new]
        sql.add_totals(StatusTotal, ("zone", *STATUS_KEY, *PAIR), _deltas(old_keys, new_keys, counted_in))
        tests = set(Brand.objects.tests().values_list("id", flat=True))
        sql.add_totals(DayTotal, ("zone", *DAY_KEY, *PAIR), _day_deltas(old_keys, new_keys, tests, counted_in))
        sql.add_totals(TrackedTotal, ("zone", *TRACKED_KEY, *PAIR), _tracked_deltas(old, new, tz, counted_in))
        sql.add_totals(
            DimensionTotal, ("zone", *DIMENSION_KEY, *DIMENSION_SUMS), _dimension_deltas(old, new, tz, counted_in)
        )


def _locking_day(report: ActionReport, tz: ZoneInfo):
    return local_day(report.locking_date, tz) if report.locking_date else NO_LOCKING_DAY


def _key(report: ActionReport, tz: ZoneInfo) -> tuple:
    """(brand, currency, group, locking day in `tz`) and the payout the report adds to it."""
    return (report.brand_id, report.currency, report.group, _locking_day(report, tz)), report.payout or Decimal(0)


def _deltas(old: list[tuple], new: list[tuple], in_zone: str) -> list[tuple]:
    actions: Counter = Counter()
    payout: dict = {}
    for sign, keys in ((-1, old), (1, new)):
        for key, amount in keys:
            actions[key] += sign
            payout[key] = payout.get(key, Decimal(0)) + sign * amount
    return [(in_zone, *key, actions[key], payout[key]) for key in payout if actions[key] or payout[key] != Decimal(0)]


STATUS_KEY = ("brand", "currency", "group", "locking_day")
DAY_KEY = ("locking_day", "currency", "group")
TRACKED_KEY = ("tracked_day", "brand", "currency", "group", "locking_day")
PAIR = ("actions", "payout")
DIMENSION_KEY = ("dimension", "tracked_day", "brand", "currency", "value")
DIMENSION_SUMS = ("tracked", "reversed", "gained", "changed", "lost")


def _day_deltas(old_keys: list[tuple], new_keys: list[tuple], tests: set, in_zone: str) -> list[tuple]:
    """DayTotal's changes from StatusTotal's keys: (zone, *DAY_KEY, actions, payout), the test brand's left out."""
    totals: dict[tuple, list] = {}
    for sign, keys in ((-1, old_keys), (1, new_keys)):
        for (brand_id, currency, group, day), amount in keys:
            if brand_id not in tests:
                slot = totals.setdefault((day, currency, group), [0, Decimal(0)])
                slot[0] += sign
                slot[1] += sign * amount
    return [(in_zone, *key, *sums) for key, sums in totals.items() if any(sums)]


def _tracked_deltas(old: list, new: list, tz: ZoneInfo, in_zone: str) -> list[tuple]:
    """TrackedTotal's changes: (zone, *TRACKED_KEY, actions, payout), the keys that did not change left out."""

    def rows(report):
        key = (local_day(report.tracked_at, tz), report.brand_id, report.currency, report.group)
        yield (*key, _locking_day(report, tz)), (1, report.payout or Decimal(0))

    return _summed(old, new, rows, in_zone)


def _dimension_deltas(old: list, new: list, tz: ZoneInfo, in_zone: str) -> list[tuple]:
    """DimensionTotal's changes: (zone, *DIMENSION_KEY, *DIMENSION_SUMS), one key per dimension."""

    def rows(report):
        day = local_day(report.tracked_at, tz)
        sums = (1, int(report.reversed), report.gained, report.changed, report.lost)
        for name in DIMENSION_FIELDS:
            yield (name, day, report.brand_id, report.currency, getattr(report, name)), sums

    return _summed(old, new, rows, in_zone)


def _summed(old: list, new: list, rows, in_zone: str) -> list[tuple]:
    """The new reports' rows minus the old ones', per key; the keys whose sums are all zero left out
    (a report rewritten without a change to them)."""
    totals: dict[tuple, list] = {}
    for sign, reports_ in ((-1, old), (1, new)):
        for report in reports_:
            for key, sums in rows(report):
                slot = totals.setdefault(key, [0] * len(sums))
                for i, amount in enumerate(sums):
                    slot[i] += sign * amount
    return [(in_zone, *key, *sums) for key, sums in totals.items() if any(sums)]


# --- Totals ------------------------------------------------------------------------------------


def ensure_totals(now: datetime | None = None) -> None:
    """Count the totals in the display zone unless they are counted already (one query then)."""
    wanted = zone()
    if ReportZone.objects.filter(zone=wanted).exists():
        return
    with transaction.atomic():
        sql.advisory_xact_lock(LOCK_KEY)
        if not ReportZone.objects.filter(zone=wanted).exists():  # counted while we waited?
            _count_totals(wanted, now or timezone.now())


def _count_totals(in_zone: str, now: datetime) -> None:
    _drop()
    tz = ZoneInfo(in_zone)
    reports_ = ActionReport.objects.order_by()
    no_day = models.Value(NO_LOCKING_DAY, output_field=models.DateField())
    by_locking_day = reports_.annotate(lday=Coalesce(TruncDate("locking_date", tzinfo=tz), no_day))
    counted = {"n": models.Count("id"), "total": _total("payout")}
    status = by_locking_day.values("brand_id", "currency", "group", "lday").annotate(**counted)
    _insert_counted(StatusTotal, STATUS_KEY, in_zone, ("brand_id", "currency", "group", "lday"), status)
    days = (
        by_locking_day.exclude(brand__in=Brand.objects.tests().values("id"))
        .values("lday", "currency", "group")
        .annotate(**counted)
    )
    _insert_counted(DayTotal, DAY_KEY, in_zone, ("lday", "currency", "group"), days)
    by_day = by_locking_day.annotate(day=TruncDate("tracked_at", tzinfo=tz))
    tracked = by_day.values("day", "brand_id", "currency", "group", "lday").annotate(**counted)
    _insert_counted(TrackedTotal, TRACKED_KEY, in_zone, ("day", "brand_id", "currency", "group", "lday"), tracked)
    _count_dimensions(in_zone, by_day)
    ReportZone.objects.create(zone=in_zone, counted_at=now)


def _total(name: str):
    return Coalesce(models.Sum(name), Decimal(0), output_field=_decimal())


def _count_dimensions(in_zone: str, by_day) -> None:
    """DimensionTotal from one pass over the reports: their sums per day, brand, currency and every
    dimension's value at once, then each dimension's rows summed from those in the database (six
    passes over the reports took 6 s of a 10 s count at a million events)."""
    money = {f"{name}_sum": _total(name) for name in ("gained", "changed", "lost")}
    base = by_day.values("day", "brand_id", "currency", *DIMENSION_FIELDS).annotate(
        n=models.Count("id"), reversed_n=models.Count("id", filter=models.Q(reversed=True)), **money
    )
    sql.insert_summed(
        DimensionTotal,
        ("zone", *DIMENSION_KEY, *DIMENSION_SUMS),
        base,
        [((in_zone, name), ("day", "brand_id", "currency", name)) for name in DIMENSION_FIELDS],
        ("n", "reversed_n", *money),
    )


def _insert_counted(model, key: tuple[str, ...], in_zone: str, columns: tuple[str, ...], rows) -> None:
    """Counted rows (`columns` as the model's `key`, then n and total) into a total of actions and
    payout, in the database rather than every row through Python."""
    sql.insert_summed(model, ("zone", *key, *PAIR), rows, [((in_zone,), columns)], ("n", "total"))


def _decimal():
    return models.DecimalField(max_digits=24, decimal_places=6)


def forget() -> None:
    """Drop the totals (counted again on the next view): for writers that delete or move actions in bulk."""
    with transaction.atomic():
        sql.advisory_xact_lock(LOCK_KEY)
        _drop()


def _drop() -> None:
    for model in (StatusTotal, DayTotal, TrackedTotal, DimensionTotal, ReportZone):
        model.objects.all().delete()
